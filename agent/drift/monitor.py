"""One monitor: a detector on one signal, with its transform and confirmation.

Each value goes through these steps, in the drift thread:

1. A non-finite value (NaN, ±inf) is counted in ``non_finite`` and goes
   no further: after one NaN, river 0.26's ADWIN and Page-Hinkley report
   no change again, whatever follows. On a binary signal, a value other
   than 0 or 1 is counted in ``invalid``.
2. The value is mapped into [0, 1] by the reference CDF (``reference``
   module). A signal without stored reference statistics, such as the
   prediction, first collects ``warmup_rows`` values and builds its CDF
   from them. Binary error indicators are fed as they are.
3. The detector gets the value. When it reports a change, the monitor
   estimates where the change began (``Detector.change_size``) and
   waits for the next ``confirm_rows`` values.
4. Confirmation: a z-test of the mean of those ``confirm_rows``
   transformed values against the ``baseline_rows`` values before the
   estimated change point, with the standard deviation of the baseline
   (the spread under "no change"). The values between the change point
   and the detection are left out, for two reasons. ADWIN's estimate of
   the point is early by up to a few hundred values. And a test on
   values the detector had not seen when it fired keeps its false-alarm
   rate near the nominal level instead of inheriting the detector's.
   The change is confirmed when ``|z| >= confirm_z``, or
   ``z >= confirm_z`` for the error signal, where only a rise matters.
   Otherwise the test is repeated with twice as many values after the
   detection, while the baseline keeps ``confirm_rows`` values within
   the last ``history_rows``, and then the change is dismissed.
5. A confirmed change on a monitor that is watching becomes a finding
   (a drift event) and the monitor is drifting. Further confirmed
   changes while it drifts raise nothing. It returns to watching after
   ``cooldown_rows`` values without a confirmed change.

Indices count the values a monitor accepted (finite and valid), from 0.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.drift.reference import ReferenceCdf
from plugins.detectors import Detector

# Values are scanned in chunks, and the history has room for one chunk
# besides the baseline and the values after a change point.
CHUNK_ROWS = 512
# The minimum number of values before a change point that the z-test
# accepts as its baseline, e.g. for a change soon after the monitor started.
MIN_BASELINE_ROWS = 30
RECENT_VALUES = 20
NEVER = math.inf


class MonitorStatus(enum.StrEnum):
    WARMING_UP = "warming_up"
    WATCHING = "watching"
    DRIFTING = "drifting"


TRANSITIONS: dict[MonitorStatus, frozenset[MonitorStatus]] = {
    MonitorStatus.WARMING_UP: frozenset({MonitorStatus.WATCHING}),
    MonitorStatus.WATCHING: frozenset({MonitorStatus.DRIFTING}),
    MonitorStatus.DRIFTING: frozenset({MonitorStatus.WATCHING}),
}


class InvalidTransitionError(RuntimeError):
    def __init__(self, signal: str, current: MonitorStatus, target: MonitorStatus):
        super().__init__(
            f"The monitor of {signal} cannot go from {current} to {target}; allowed: "
            f"{', '.join(sorted(TRANSITIONS[current])) or 'none'}."
        )


@dataclass(frozen=True)
class MonitorSettings:
    """Transform, confirmation and cooldown settings of one monitor.

    Attributes:
        detector: the detector plugin's name, e.g. ``adwin``.
        detector_options: its validated options.
        confirm_rows: values after the change point that the z-test needs.
        confirm_z: the z-score a change must reach to be confirmed.
        baseline_rows: values before the change point the z-test compares with.
        history_rows: values kept for the z-test and replayed after a restart.
        warmup_rows: values collected to build a reference when none is stored.
        cooldown_rows: values without a confirmed change that end a drift.
        rise_only: confirm only increases (the error signal).
    """

    detector: str
    detector_options: dict[str, Any]
    confirm_rows: int = 100
    confirm_z: float = 5.0
    baseline_rows: int = 1000
    history_rows: int = 2000
    warmup_rows: int = 500
    cooldown_rows: int = 1000
    rise_only: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "detector_options": self.detector_options,
            "confirm_rows": self.confirm_rows,
            "confirm_z": self.confirm_z,
            "baseline_rows": self.baseline_rows,
            "history_rows": self.history_rows,
            "warmup_rows": self.warmup_rows,
            "cooldown_rows": self.cooldown_rows,
            "rise_only": self.rise_only,
        }


@dataclass(frozen=True)
class Finding:
    """A confirmed change on a watching monitor: the content of a drift event."""

    signal: str
    detector: str
    sample_index: int
    stats: dict[str, Any]


@dataclass
class _Pending:
    change_index: int
    detected_index: int
    due_index: int


class _History:
    """The latest values by global index, in a numpy ring buffer."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.values = np.zeros(capacity)
        self.count = 0

    @property
    def oldest(self) -> int:
        return max(0, self.count - self.capacity)

    def extend(self, values: np.ndarray) -> None:
        total = len(values)
        newest = values[-self.capacity :]
        first = self.count + total - len(newest)
        self.values[(first + np.arange(len(newest))) % self.capacity] = newest
        self.count += total

    def slice(self, start: int, stop: int) -> np.ndarray:
        """Return values ``start`` to ``stop - 1``; ``start`` must still be held."""
        if start < self.oldest or stop > self.count:
            raise IndexError(
                f"Values {start}..{stop} are not all held; held: {self.oldest}.."
                f"{self.count}."
            )
        return self.values[np.arange(start, stop) % self.capacity]

    def tail(self, count: int) -> np.ndarray:
        count = min(count, self.count - self.oldest)
        return self.slice(self.count - count, self.count)


@dataclass
class MonitorCounts:
    """Counts of the values a monitor has seen since its version started.

    ``accepted`` counts the values fed to the detector; a monitor that is
    warming up holds its values back until its reference is built.
    ``skipped`` counts rows the service left out under overload.
    """

    accepted: int = 0
    non_finite: int = 0
    invalid: int = 0
    skipped: int = 0
    detections: int = 0
    confirmed: int = 0
    dismissed: int = 0
    events: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(vars(self))


class Monitor:
    """A drift detector watching one signal of one model version.

    Args:
        signal: ``feature:NAME``, ``prediction`` or ``error``.
        settings: the transform, confirmation and cooldown settings.
        detector: a fresh detector plugin instance.
        reference: the signal's reference CDF. None makes the monitor warm
            up on its first ``settings.warmup_rows`` values, unless the
            detector takes binary input, which needs no transform.
    """

    def __init__(
        self,
        signal: str,
        settings: MonitorSettings,
        detector: Detector,
        reference: ReferenceCdf | None = None,
    ) -> None:
        self.signal = signal
        self.settings = settings
        self.detector = detector
        self.reference = reference
        self.reference_source = "version"
        self.status = MonitorStatus.WATCHING
        self.counts = MonitorCounts()
        self.last_confirmed_index: int | None = None
        self.last_event_index: int | None = None
        self._pending: _Pending | None = None
        self._warmup: list[float] = []
        capacity = settings.history_rows + CHUNK_ROWS
        self._transformed = _History(capacity)
        self._raw = _History(capacity)
        if binary_input(detector):
            self.reference_source = "none"
        elif reference is None:
            self.status = MonitorStatus.WARMING_UP
            self.reference_source = "warmup"

    @property
    def binary(self) -> bool:
        return binary_input(self.detector)

    @property
    def pending_change_index(self) -> int | None:
        return None if self._pending is None else self._pending.change_index

    # Feeding values.

    def feed(self, values: np.ndarray) -> list[Finding]:
        """Process a batch of raw values in order; return the findings."""
        values = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values)
        self.counts.non_finite += int(np.count_nonzero(~finite))
        values = values[finite]
        if self.binary:
            valid = (values == 0.0) | (values == 1.0)
            self.counts.invalid += int(np.count_nonzero(~valid))
            values = values[valid]
        if self.status is MonitorStatus.WARMING_UP:
            values = self._warm_up(values)
        findings: list[Finding] = []
        for start in range(0, len(values), CHUNK_ROWS):
            findings.extend(self._scan(values[start : start + CHUNK_ROWS]))
        return findings

    def _warm_up(self, values: np.ndarray) -> np.ndarray:
        """Collect values until the reference can be built; return those left over."""
        needed = self.settings.warmup_rows - len(self._warmup)
        self._warmup.extend(values[:needed].tolist())
        if len(self._warmup) < self.settings.warmup_rows:
            return values[:0]
        sample = np.array(self._warmup)
        self.reference = ReferenceCdf.from_sample(sample)
        self._warmup = []
        self._move_to(MonitorStatus.WATCHING)
        return np.concatenate([sample, values[needed:]])

    def _transform(self, values: np.ndarray) -> np.ndarray:
        if self.binary or self.reference is None:
            return values
        return self.reference.transform(values)

    def _scan(self, raw: np.ndarray) -> list[Finding]:
        transformed = self._transform(raw)
        self._raw.extend(raw)
        self._transformed.extend(transformed)
        findings: list[Finding] = []
        update = self.detector.update
        index = self.counts.accepted
        due = self._due_index()
        quiet = self._quiet_index()
        for value in transformed.tolist():
            if update(value):
                self._on_detection(index)
                due = self._due_index()
            if index >= due:
                finding = self._confirm(index)
                if finding is not None:
                    findings.append(finding)
                due = self._due_index()
                quiet = self._quiet_index()
            if index >= quiet:
                self._move_to(MonitorStatus.WATCHING)
                quiet = NEVER
            index += 1
        self.counts.accepted = index
        return findings

    def _due_index(self) -> float:
        return NEVER if self._pending is None else self._pending.due_index

    def _quiet_index(self) -> float:
        if (
            self.status is not MonitorStatus.DRIFTING
            or self.last_confirmed_index is None
        ):
            return NEVER
        return self.last_confirmed_index + self.settings.cooldown_rows

    def _on_detection(self, index: int) -> None:
        self.counts.detections += 1
        if self._pending is not None:
            return
        settings = self.settings
        longest = settings.history_rows - settings.baseline_rows - settings.confirm_rows
        since_change = self.detector.change_size() or settings.confirm_rows
        self._pending = _Pending(
            change_index=index + 1 - max(1, min(since_change, longest)),
            detected_index=index,
            due_index=index + settings.confirm_rows,
        )

    # Confirmation.

    def _confirm(self, index: int) -> Finding | None:
        pending = self._pending
        assert pending is not None
        settings = self.settings
        start = self._baseline_start(pending, index)
        if pending.change_index - start < MIN_BASELINE_ROWS:
            return self._dismiss()
        before = self._transformed.slice(start, pending.change_index)
        after = self._transformed.slice(pending.detected_index + 1, index + 1)
        z = _z_score(after, before)
        confirmed = z >= settings.confirm_z or (
            not settings.rise_only and z <= -settings.confirm_z
        )
        if not confirmed:
            return self._look_again(pending, index)
        self._pending = None
        self.counts.confirmed += 1
        self.last_confirmed_index = index
        if self.status is MonitorStatus.DRIFTING:
            return None
        self._move_to(MonitorStatus.DRIFTING)
        self.counts.events += 1
        self.last_event_index = index
        stats = self._event_stats(pending, start, index, before, after, z)
        return Finding(self.signal, self.settings.detector, index + 1, stats)

    def _baseline_start(self, pending: _Pending, index: int) -> int:
        """Return the first baseline index for a test at ``index``.

        The baseline is the ``baseline_rows`` values before the change
        point, cut to the last ``history_rows`` values before ``index``, so
        that the test does not depend on how the values were batched.
        """
        return max(
            pending.change_index - self.settings.baseline_rows,
            index + 1 - self.settings.history_rows,
            self._transformed.oldest,
        )

    def _look_again(self, pending: _Pending, index: int) -> None:
        """Test again with twice the values after the detection, while they fit.

        A small shift needs more values than ``confirm_rows`` to reach
        ``confirm_z``, and the detector has already cut its window, so it
        would not report the shift a second time. Each look doubles the
        values after the detection, which shortens the baseline, until
        fewer than ``confirm_rows`` baseline values would be left. With the
        defaults that is at most five looks, so the false-alarm rate grows
        by at most that factor.
        """
        next_due = pending.detected_index + 2 * (index - pending.detected_index)
        start = self._baseline_start(pending, next_due)
        if pending.change_index - start < self.settings.confirm_rows:
            return self._dismiss()
        pending.due_index = next_due
        return None

    def _dismiss(self) -> None:
        self._pending = None
        self.counts.dismissed += 1

    def _event_stats(
        self,
        pending: _Pending,
        start: int,
        index: int,
        before: np.ndarray,
        after: np.ndarray,
        z: float,
    ) -> dict[str, Any]:
        raw_before = self._raw.slice(start, pending.change_index)
        raw_after = self._raw.slice(pending.detected_index + 1, index + 1)
        reference = None
        if self.reference is not None:
            reference = {
                "source": self.reference_source,
                "mean": self.reference.mean,
                "std": self.reference.std,
            }
        return {
            "change_index": pending.change_index,
            "detected_index": pending.detected_index,
            "confirmed_index": index,
            "before": _describe(raw_before),
            "after": _describe(raw_after),
            "transformed": {
                "before_mean": float(before.mean()),
                "before_std": float(before.std()),
                "after_mean": float(after.mean()),
                "z": _finite_or_none(z),
            },
            "reference": reference,
        }

    def _move_to(self, target: MonitorStatus) -> None:
        if target not in TRANSITIONS[self.status]:
            raise InvalidTransitionError(self.signal, self.status, target)
        self.status = target

    # State for the store and the API.

    def recent_values(self) -> list[float]:
        """Return the latest accepted raw values, oldest first."""
        if self.status is MonitorStatus.WARMING_UP:
            return self._warmup[-RECENT_VALUES:]
        return self._raw.tail(RECENT_VALUES).tolist()

    def to_state(self) -> dict[str, Any]:
        """Return what ``restore`` needs to continue after a restart, as JSON data."""
        held = self._transformed.count - self._transformed.oldest
        keep = min(held, self.settings.history_rows)
        pending = None if self._pending is None else vars(self._pending).copy()
        return {
            "status": self.status.value,
            "counts": self.counts.to_json(),
            "pending": pending,
            "last_confirmed_index": self.last_confirmed_index,
            "last_event_index": self.last_event_index,
            "reference": None if self.reference is None else self.reference.to_json(),
            "reference_source": self.reference_source,
            "warmup": self._warmup,
            "history_transformed": _rounded(self._transformed.tail(keep)),
            "history_raw": _rounded(self._raw.tail(keep)),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``to_state`` output: counts, status and the history.

        The detector is rebuilt by replaying the stored history, and
        detections during the replay are ignored: each of those values
        was already scanned before the restart, and any change they show
        was either confirmed then or dismissed.
        """
        self.status = MonitorStatus(state["status"])
        self.counts = MonitorCounts(**state["counts"])
        self._pending = _Pending(**state["pending"]) if state["pending"] else None
        self.last_confirmed_index = state["last_confirmed_index"]
        self.last_event_index = state["last_event_index"]
        if state["reference"] is not None:
            self.reference = ReferenceCdf.from_json(state["reference"])
        self.reference_source = state["reference_source"]
        self._warmup = list(state["warmup"])
        transformed = np.array(state["history_transformed"], dtype=np.float64)
        raw = np.array(state["history_raw"], dtype=np.float64)
        start = self.counts.accepted - len(transformed)
        self._transformed.count = self._raw.count = start
        self._transformed.extend(transformed)
        self._raw.extend(raw)
        for value in transformed.tolist():
            self.detector.update(value)
        if self._pending is not None and self._pending.change_index < start:
            # The change point is no longer held, so it can be neither
            # confirmed nor dismissed on the evidence; start afresh.
            self._pending = None


def binary_input(detector: Detector) -> bool:
    """Return whether the detector takes 0/1 values fed without a transform."""
    return detector.input_kind == "binary"


def _z_score(after: np.ndarray, before: np.ndarray) -> float:
    difference = float(after.mean() - before.mean())
    spread = float(before.std())
    if spread == 0.0:
        return 0.0 if difference == 0.0 else math.copysign(math.inf, difference)
    return difference / (spread * math.sqrt(1 / len(after) + 1 / len(before)))


def _describe(values: np.ndarray) -> dict[str, Any]:
    if len(values) == 0:
        return {"count": 0}
    return {
        "count": int(len(values)),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "p50": float(np.median(values)),
    }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _rounded(values: np.ndarray) -> list[float]:
    # Seven significant digits keep the stored state small; the detectors
    # see the rounded values only when the history is replayed.
    return [float(f"{value:.7g}") for value in values.tolist()]
