from bench.worker_profile import summary


def test_a_profile_summary_gives_each_thread_s_share_and_the_project_s_busiest_functions() -> None:
    lines = [
        "thread (7): MainThread;main (streams/cli.py:225);ingest_batch (streams/agents.py:140) 20",
        "thread (7): MainThread;select (selectors.py:468) 5",
        "thread (9): model_0;rank (sinks/scorer.py:290);matmul (torch/functional.py:1) 25",
        "",
    ]
    report = summary(lines, seconds=1.0, top=2)
    assert report == [
        "MainThread: active in 50% of 50 possible samples",
        "model_0: active in 50% of 50 possible samples",
        "   50.0% of the samples in rank",
        "   40.0% of the samples in ingest_batch",
    ]
