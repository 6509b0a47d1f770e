"""Interest evolution as a learned next-item model: a GRU over the user's recent items, trained online.

An item's vector is a learned projection of its frozen text vector plus a learned embedding of its own (zero-mean,
small at first), so an item no one has acted on yet scores from its text alone; input and output vectors are
tied. The model learns from the stream: every consumption adds an example (the user's previous items, the item),
and every `train_every` examples it takes `train_steps` steps of sampled softmax on a batch of the newest
examples and older ones drawn from a bounded buffer. Between steps its parameters are a fixed snapshot, which is
what scores items.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from sinks.catalogue import Catalogue

PAD = -1
"""The row a sequence is padded with (on the left, as zero input vectors)."""


@dataclass(frozen=True)
class SequenceSettings:
    """The sequence model's size and training cadence (the defaults are the weighting config's)."""

    dim: int
    length: int
    train_every: int
    train_steps: int
    batch: int
    learning_rate: float
    negatives: int
    buffer: int
    seed: int


class NextItemNetwork(torch.nn.Module):
    """Item vectors from text plus learned embeddings; a GRU turns a sequence of them into a user vector."""

    def __init__(self, text_dim: int, dim: int, capacity: int, generator: torch.Generator) -> None:
        super().__init__()
        self.text_projection = torch.nn.Linear(text_dim, dim, bias=False)
        self.item_embeddings = torch.nn.Parameter(0.01 * torch.randn(capacity, dim, generator=generator))
        self.item_bias = torch.nn.Parameter(torch.zeros(capacity))
        self.gru = torch.nn.GRU(dim, dim, batch_first=True)
        self.output = torch.nn.Linear(dim, dim)

    def item_vectors(self, text: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self.text_projection(text) + self.item_embeddings[rows]

    def user_vectors(self, inputs: torch.Tensor) -> torch.Tensor:
        """users × dim from users × length × dim inputs (oldest first, zero rows for padding)."""
        _, hidden = self.gru(inputs)
        return self.output(hidden[-1])


class ExampleBuffer:
    """The last `capacity` training examples (previous rows padded with PAD, next row), as two ring arrays."""

    def __init__(self, capacity: int, length: int) -> None:
        self.prefixes = np.full((capacity, length), PAD, np.int64)
        self.targets = np.zeros(capacity, np.int64)
        self.added = 0

    def __len__(self) -> int:
        return min(self.added, len(self.targets))

    def add(self, prefix: npt.NDArray[np.int64], target: int) -> None:
        slot = self.added % len(self.targets)
        self.prefixes[slot] = prefix
        self.targets[slot] = target
        self.added += 1

    def newest(self, count: int) -> npt.NDArray[np.int64]:
        """The slots of the newest `count` examples."""
        return (self.added - 1 - np.arange(min(count, len(self)))) % len(self.targets)


def padded(rows: Sequence[int], length: int) -> npt.NDArray[np.int64]:
    """The last `length` rows, left-padded with PAD.

    >>> padded([4, 5, 6], 2).tolist(), padded([4], 3).tolist()
    ([5, 6], [-1, -1, 4])
    """
    tail = list(rows)[-length:] if length else []
    return np.array([PAD] * (length - len(tail)) + tail, np.int64)


class SequenceModel:
    """The next-item model of one catalogue: scores items for sequences, learns from examples at its cadence."""

    def __init__(self, catalogue: Catalogue, settings: SequenceSettings) -> None:
        self.catalogue = catalogue
        self.settings = settings
        self.generator = torch.Generator().manual_seed(self.settings.seed)
        self.rng = np.random.default_rng(self.settings.seed)
        self.network = self._new_network(max(len(catalogue), 1024))
        self.buffer = ExampleBuffer(self.settings.buffer, self.settings.length)
        self.since_training = 0
        self.steps = 0
        self._table: tuple[tuple[int, int, int], torch.Tensor] | None = None

    def _new_network(self, capacity: int) -> NextItemNetwork:
        """A network whose initial parameters depend on the seed alone (not on torch's global generator)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=self.generator)))
            network = NextItemNetwork(self.catalogue.dim, self.settings.dim, capacity, self.generator)
        network.to(self.catalogue.device)
        self.optimizer = torch.optim.Adam(network.parameters(), lr=self.settings.learning_rate)
        return network

    def _fit_catalogue(self) -> None:
        """Grows the embedding table when the catalogue outgrew it (the optimizer then starts afresh)."""
        capacity = len(self.network.item_bias)
        if len(self.catalogue) <= capacity:
            return
        old = self.network
        self.network = self._new_network(max(2 * capacity, len(self.catalogue)))
        with torch.no_grad():
            for name, tensor in old.state_dict().items():
                target = self.network.state_dict()[name]
                target[: len(tensor)] = tensor

    def item_table(self) -> torch.Tensor:
        """items × dim: every catalogue item's vector under the current parameters (cached until they or the
        catalogue's vectors change)."""
        self._fit_catalogue()
        key = (self.steps, len(self.catalogue), self.catalogue.replacements)
        if self._table is None or self._table[0] != key:
            n = len(self.catalogue)
            with torch.no_grad():
                rows = torch.arange(n, device=self.catalogue.device)
                table = self.network.item_vectors(self.catalogue.matrix, rows)
            self._table = (key, table)
        return self._table[1]

    def item_bias(self) -> npt.NDArray[np.float32]:
        """Every catalogue item's learned bias (its logit before any sequence)."""
        return self.network.item_bias.detach()[: len(self.catalogue)].cpu().numpy()

    def _inputs(self, prefixes: npt.NDArray[np.int64], vectors: torch.Tensor) -> torch.Tensor:
        """users × length × dim: the vectors of the prefixes' rows in `vectors`, zero where padded."""
        index = torch.from_numpy(np.maximum(prefixes, 0)).to(vectors.device)
        inputs = vectors[index]
        return inputs * torch.from_numpy(prefixes >= 0).to(vectors.device).unsqueeze(-1)

    def user_vectors(self, sequences: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        """users × dim for the users' recent rows (oldest first)."""
        length = self.settings.length
        if not sequences:
            return np.zeros((0, self.settings.dim), np.float32)
        prefixes = np.stack([padded(rows, length) for rows in sequences])
        with torch.no_grad():
            vectors = self.network.user_vectors(self._inputs(prefixes, self.item_table()))
        return vectors.cpu().numpy()

    def scores(self, user_vectors: npt.NDArray[np.float32], out: torch.Tensor | None = None) -> torch.Tensor:
        """users × items: the next-item logits of each user vector (written into `out` when given)."""
        table = self.item_table()
        with torch.no_grad():
            bias = self.network.item_bias[: len(table)]
            users = torch.from_numpy(user_vectors).to(table.device)
            return torch.addmm(bias, users, table.T) if out is None else torch.addmm(bias, users, table.T, out=out)

    def learn(self, previous_rows: Sequence[int], row: int) -> int:
        """Adds the example (previous rows → row); trains when due. Returns the steps taken."""
        self.buffer.add(padded(previous_rows, self.settings.length), row)
        self.since_training += 1
        if self.since_training < self.settings.train_every or len(self.buffer) < self.settings.batch:
            return 0
        self.since_training = 0
        for _ in range(self.settings.train_steps):
            self._step()
        return self.settings.train_steps

    def _step(self) -> None:
        """One sampled-softmax step: the batch's next items and uniform negatives are the classes."""
        settings, buffer = self.settings, self.buffer
        self._fit_catalogue()
        newest = buffer.newest(min(settings.train_every, settings.batch // 2))
        older = self.rng.integers(0, len(buffer), settings.batch - len(newest))
        slots = np.concatenate([newest, older])
        prefixes, targets = buffer.prefixes[slots], buffer.targets[slots]
        negatives = self.rng.integers(0, len(self.catalogue), min(settings.negatives, len(self.catalogue)))
        rows, inverse = np.unique(np.concatenate([np.maximum(prefixes.ravel(), 0), targets, negatives]),
                                  return_inverse=True)
        device = self.catalogue.device
        rows_t = torch.from_numpy(rows).to(device)
        vectors = self.network.item_vectors(self.catalogue.matrix[rows_t], rows_t)
        local = inverse[: prefixes.size].reshape(prefixes.shape)
        inputs = self._inputs(np.where(prefixes >= 0, local, PAD), vectors)
        users = self.network.user_vectors(inputs)
        answers = inverse[prefixes.size : prefixes.size + len(targets)]
        classes, labels = np.unique(np.concatenate([answers, inverse[prefixes.size + len(targets) :]]),
                                    return_inverse=True)
        classes_t = torch.from_numpy(classes).to(device)
        logits = users @ vectors[classes_t].T + self.network.item_bias[rows_t[classes_t]]
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels[: len(answers)]).to(device))
        self.optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        self.steps += 1

    def to_bytes(self) -> bytes:
        """The parameters and the example buffer, item rows as catalogue rows (see `sinks.shared_snapshot`)."""
        buffer = io.BytesIO()
        state = {name: tensor.detach().cpu().numpy() for name, tensor in self.network.state_dict().items()}
        order = np.roll(np.arange(len(self.buffer)), -(self.buffer.added % len(self.buffer.targets))) \
            if self.buffer.added > len(self.buffer.targets) else np.arange(len(self.buffer))
        np.savez(buffer, steps=self.steps, since=self.since_training, prefixes=self.buffer.prefixes[order],
                 targets=self.buffer.targets[order], **{f"param.{k}": v for k, v in state.items()})
        return buffer.getvalue()

    @staticmethod
    def read(raw: bytes) -> dict[str, npt.NDArray[np.generic]]:
        """The arrays of `to_bytes` (raises before anything is changed when they cannot be read)."""
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    def restore(self, arrays: dict[str, npt.NDArray[np.generic]], new_row: npt.NDArray[np.int64]) -> None:
        """Loads `read(to_bytes())` of a model whose row r is this catalogue's row `new_row[r]` (−1: not here)."""
        params = {k.removeprefix("param."): v for k, v in arrays.items() if k.startswith("param.")}
        prefixes, targets = arrays["prefixes"].astype(np.int64), arrays["targets"].astype(np.int64)
        steps, since = int(arrays["steps"]), int(arrays["since"])
        self._fit_catalogue()
        state = self.network.state_dict()
        with torch.no_grad():
            for name, value in params.items():
                tensor = torch.from_numpy(value)
                if name in ("item_embeddings", "item_bias"):
                    kept = np.flatnonzero(new_row >= 0)
                    state[name][torch.from_numpy(new_row[kept])] = tensor[torch.from_numpy(kept)].to(
                        state[name].device)
                else:
                    state[name].copy_(tensor)
        mapped = np.where(prefixes >= 0, new_row[np.maximum(prefixes, 0)], PAD)
        for prefix, target in zip(mapped, new_row[targets], strict=True):
            if target >= 0:
                self.buffer.add(prefix, int(target))
        self.steps, self.since_training = steps, since
        self._table = None
