"""Live scoring whose cost does not grow with the conversation: the TF-IDF scores kept as running sums.

A linear head over L2-normalised, sublinear TF-IDF features scores a conversation as
``(sum_t v_t * w_t) / sqrt(sum_t v_t**2) + b`` with ``v_t = (1 + log count_t) * idf_t``. Keeping, per
view, the term counts, the vector ``S = sum_t v_t * w_t`` and ``Q = sum_t v_t**2``, a new turn changes
only the terms it contains: its cost is that of the turn, whatever came before. Removing a turn (the
window slides, a partial turn is replaced by the next partial) is the same update with negative counts.

The word views count bigrams across the boundary of two consecutive parts (the rendered conversation
is one string), so the state keeps each part's first and last token and adds or removes the boundary
bigram with the part. The result equals a full :meth:`TfidfMultiTask.scores` call on the same turns
(to float rounding); ``tests/model/kinds/test_incremental.py`` checks it on random edit sequences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from model.arrays import Float64Array, FloatArray, Int32Array, IntArray
from model.conversation.record import Turn
from model.kinds.compiled import NgramFeaturizer
from model.text.normalize import CHANNEL_TOKENS, ROLE_TOKENS, normalize_text

EMPTY_CLIENT = "__empty__"


@dataclass
class _Part:
    """One rendered piece of a view's text: its term occurrences and its edge tokens."""

    terms: Int32Array
    first: str | None
    last: str | None


@dataclass
class _ViewState:
    """Running counts and sums of one view (see the module docstring)."""

    counts: dict[int, int] = field(default_factory=dict)
    S: Float64Array = field(default_factory=lambda: np.zeros(0, dtype=np.float64))  # [n_outputs]
    Q: float = 0.0
    parts: list[_Part] = field(default_factory=list)


class IncrementalView:
    """One TF-IDF view and the rows of the weight matrix it feeds."""

    def __init__(self, name: str, featurizer: NgramFeaturizer, weights: FloatArray) -> None:
        self.name = name
        self.featurizer = featurizer
        self.weights = weights  # [n_features of the view, n_outputs]
        spec = featurizer.spec
        self.word = spec.analyzer == "word"
        self.bigrams = self.word and spec.ngram_range[0] <= 2 <= spec.ngram_range[1]
        if self.word and spec.ngram_range[1] > 2:
            raise ValueError("incremental scoring supports word n-grams up to 2")

    def new_state(self) -> _ViewState:
        """The state of an empty text."""
        return _ViewState(S=np.zeros(self.weights.shape[1], dtype=np.float64))

    def part(self, text: str) -> _Part:
        """One piece of the view's text, analysed once (added or removed as a whole)."""
        f = self.featurizer
        if self.word:
            tokens = f._token.findall(text.lower() if f.spec.lowercase else text)
            return _Part(f.terms(text), tokens[0] if tokens else None, tokens[-1] if tokens else None)
        return _Part(f.terms(text), None, None)

    def _boundary(self, left: _Part, right: _Part) -> Int32Array:
        if not self.bigrams or left.last is None or right.first is None:
            return np.zeros(0, dtype=np.int32)
        i = self.featurizer.index.get(f"{left.last} {right.first}")
        return np.array([i], dtype=np.int32) if i is not None else np.zeros(0, dtype=np.int32)

    def _apply(self, state: _ViewState, terms: Int32Array, sign: int) -> None:
        if terms.size == 0:
            return
        idx, add = np.unique(terms, return_counts=True)
        keys = idx.tolist()
        counts = state.counts
        old = np.fromiter((counts.get(k, 0) for k in keys), dtype=np.int64, count=len(keys))
        new = old + sign * add
        for k, c in zip(keys, new.tolist()):
            if c:
                counts[k] = c
            else:
                counts.pop(k, None)
        idf = self.featurizer.idf[idx].astype(np.float64)
        v_old, v_new = self._tf(old) * idf, self._tf(new) * idf
        delta = v_new - v_old
        state.S += delta @ self.weights[idx]
        state.Q += float(v_new @ v_new - v_old @ v_old)

    def _tf(self, counts: IntArray) -> Float64Array:
        c = counts.astype(np.float64)
        if self.featurizer.spec.sublinear_tf:
            return np.where(c > 0, 1.0 + np.log(np.maximum(c, 1.0)), 0.0)
        return c

    def append(self, state: _ViewState, part: _Part) -> None:
        """Add ``part`` at the end of the view's text."""
        if state.parts:
            self._apply(state, self._boundary(state.parts[-1], part), +1)
        self._apply(state, part.terms, +1)
        state.parts.append(part)

    def remove(self, state: _ViewState, i: int) -> None:
        """Remove the ``i``-th part (its terms and the bigrams across its edges)."""
        parts = state.parts
        part = parts[i]
        self._apply(state, part.terms, -1)
        if i > 0:
            self._apply(state, self._boundary(parts[i - 1], part), -1)
        if i + 1 < len(parts):
            self._apply(state, self._boundary(part, parts[i + 1]), -1)
        if 0 < i < len(parts) - 1:
            self._apply(state, self._boundary(parts[i - 1], parts[i + 1]), +1)
        del parts[i]

    def scores(self, state: _ViewState) -> Float64Array:
        """The view's contribution to the raw scores, ``[n_outputs]``."""
        if state.Q <= 1e-30 or not state.counts:
            return np.zeros_like(state.S)
        if self.featurizer.spec.norm == "l2":
            normed: Float64Array = state.S / np.sqrt(state.Q)
            return normed
        return state.S.copy()


@dataclass
class LiveState:
    """What one live conversation keeps between updates (opaque to the caller)."""

    channel: str
    keys: list[tuple[str, str]] = field(default_factory=list)  # (role, text) of each turn, in order
    full: dict[str, _ViewState] = field(default_factory=dict)  # views over the whole rendered text
    client: dict[str, _ViewState] = field(default_factory=dict)  # views over the client's text
    full_index: list[int] = field(default_factory=list)  # per turn: its position among the full parts, or -1
    client_index: list[int] = field(default_factory=list)


class IncrementalScorer:
    """Keeps :class:`LiveState` up to date with a conversation's turns and returns the raw scores.

    ``full_views`` read the rendered conversation (channel token, then ``__role__ text`` per turn),
    ``client_views`` the client's words only (``__empty__`` when there are none), as the model's
    views do; ``intercept`` is added once.
    """

    def __init__(
        self,
        full_views: list[IncrementalView],
        client_views: list[IncrementalView],
        intercept: FloatArray,
        *,
        channel_token: bool = True,
    ) -> None:
        self.channel_token = channel_token
        self.full_views = full_views
        self.client_views = client_views
        self.intercept = intercept
        self._empty = {v.name: self._static_scores(v, EMPTY_CLIENT) for v in client_views}

    @staticmethod
    def _static_scores(view: IncrementalView, text: str) -> Float64Array:
        idx, values = view.featurizer.transform_one(text)
        return values.astype(np.float64) @ view.weights[idx]

    def new_state(self, channel: str) -> LiveState:
        """The state of a conversation on ``channel`` with no turns yet."""
        state = LiveState(channel=channel)
        token = self._channel(channel)
        for view in self.full_views:
            state.full[view.name] = view.new_state()
            if token:
                view.append(state.full[view.name], view.part(token))
        for view in self.client_views:
            state.client[view.name] = view.new_state()
        return state

    def _channel(self, channel: str) -> str:
        return CHANNEL_TOKENS.get(channel, "") if self.channel_token else ""

    def _offset(self, state: LiveState) -> int:
        return 1 if self._channel(state.channel) else 0

    def _push(self, state: LiveState, role: str, text: str) -> None:
        normalized = normalize_text(text)
        state.keys.append((role, text))
        if not normalized:
            state.full_index.append(-1)
            state.client_index.append(-1)
            return
        full_text = f"{ROLE_TOKENS[role]} {normalized}"
        for view in self.full_views:
            view.append(state.full[view.name], view.part(full_text))
        state.full_index.append(1)
        if role == "client":
            for view in self.client_views:
                view.append(state.client[view.name], view.part(normalized))
            state.client_index.append(1)
        else:
            state.client_index.append(-1)

    def _pop(self, state: LiveState, k: int) -> None:
        """Remove turn ``k`` (by position) from every view."""
        if state.full_index[k] >= 0:
            position = self._offset(state) + sum(1 for j in state.full_index[:k] if j >= 0)
            for view in self.full_views:
                view.remove(state.full[view.name], position)
        if state.client_index[k] >= 0:
            position = sum(1 for j in state.client_index[:k] if j >= 0)
            for view in self.client_views:
                view.remove(state.client[view.name], position)
        del state.keys[k], state.full_index[k], state.client_index[k]

    def update(self, state: LiveState, turns: Sequence[Turn]) -> None:
        """Bring ``state`` to ``turns``: drop turns gone from the front or changed at the end, add the new."""
        new = [(t.role, t.text) for t in turns]
        old = state.keys
        trim = _front_trim(old, new)
        for _ in range(trim):
            self._pop(state, 0)
        same = 0
        while same < min(len(state.keys), len(new)) and state.keys[same] == new[same]:
            same += 1
        while len(state.keys) > same:
            self._pop(state, len(state.keys) - 1)
        for role, text in new[same:]:
            self._push(state, role, text)

    def scores(self, state: LiveState) -> Float64Array:
        """The raw stacked scores ``[1, n_outputs]`` for the state's turns."""
        total = self.intercept.astype(np.float64).copy()
        for view in self.full_views:
            total += view.scores(state.full[view.name])
        has_client = any(j >= 0 for j in state.client_index)
        for view in self.client_views:
            total += view.scores(state.client[view.name]) if has_client else self._empty[view.name]
        return total[None, :]


def _front_trim(old: list[tuple[str, str]], new: list[tuple[str, str]]) -> int:
    """How many turns left the front: the smallest ``j`` with ``old[j:]`` starting like ``new``."""
    if not old or not new or old[0] == new[0]:
        return 0
    for j in range(1, len(old)):
        if old[j] == new[0]:
            return j
    return len(old)
