"""The worker's Prometheus metrics, read back through the text format a scraper sees."""

from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import WorkerMetrics


def samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def test_counts_events_dead_letters_and_recommendations() -> None:
    metrics = WorkerMetrics()
    metrics.events_in.labels("view").inc(3)
    metrics.events_in.labels("purchase").inc()
    metrics.dead_lettered("unknown item 'a'")
    metrics.dead_lettered("unknown item 'b'")
    metrics.dead_lettered("malformed JSON: unexpected character")
    metrics.recommended([12.0, 300.0, 40.0])
    seen = samples(metrics)
    assert seen[("driftrec_events_in_total", (("kind", "view"),))] == 3
    assert seen[("driftrec_events_in_total", (("kind", "purchase"),))] == 1
    assert seen[("driftrec_dead_letters_total", (("reason", "unknown item"),))] == 2
    assert seen[("driftrec_dead_letters_total", (("reason", "malformed JSON"),))] == 1
    assert seen[("driftrec_recommendations_total", ())] == 3
    assert seen[("driftrec_event_to_recommendation_seconds_count", ())] == 3
    assert seen[("driftrec_event_to_recommendation_seconds_bucket", (("le", "0.025"),))] == 1
    assert seen[("driftrec_event_to_recommendation_seconds_bucket", (("le", "0.25"),))] == 2
    assert abs(seen[("driftrec_event_to_recommendation_seconds_sum", ())] - 0.352) < 1e-9


def test_encoder_calls_without_texts_are_not_observed() -> None:
    metrics = WorkerMetrics()
    metrics.encoded(0, 0.001)
    metrics.encoded(48, 0.2)
    seen = samples(metrics)
    assert seen[("driftrec_encoder_batch_size_count", ())] == 1
    assert seen[("driftrec_encoder_batch_size_sum", ())] == 48


def test_consumer_lag_is_read_at_scrape_time() -> None:
    metrics = WorkerMetrics()
    lags = {("events", 0): 5}
    metrics.watch_lag(lambda: lags)
    assert samples(metrics)[("driftrec_consumer_lag", (("partition", "0"), ("topic", "events")))] == 5
    lags[("events", 0)] = 0
    lags[("events", 1)] = 7
    seen = samples(metrics)
    assert seen[("driftrec_consumer_lag", (("partition", "0"), ("topic", "events")))] == 0
    assert seen[("driftrec_consumer_lag", (("partition", "1"), ("topic", "events")))] == 7
