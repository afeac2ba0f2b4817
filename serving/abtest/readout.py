"""The A/B readout of one experiment: per-arm CTR (Wilson), lift against the control (delta method, optionally a
user bootstrap), the SRM check of users per arm against the configured weights, and the offline replay.

    events (events.py) -> tally (aggregate.py) -> build_readout -> report.py (JSON/markdown/PNG)

Control: the experiment's first arm unless `control` names another. SRM: users counted by their first
assignment, over the arms with weight > 0 (a zero-weight arm only gets forced traffic; its users are
reported, not tested); it fails when p < srm_alpha (0.001 by default, the usual SRM alarm level, since the
test runs on every readout and a false alarm stops the analysis).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from serving.abtest.aggregate import ArmTally, Tallies, tally
from serving.abtest.events import Event
from serving.abtest.replay import replay_metrics
from serving.abtest.stats import Lift, bootstrap_lift, relative_lift, srm_chi_square, wilson_interval
from serving.settings import ExperimentSettings, ServeSettings


@dataclass(frozen=True)
class ReadoutOptions:
    control: str | None = None
    srm_alpha: float = 0.001
    ks: tuple[int, ...] = (10,)
    bootstrap: int = 0  # user-bootstrap resamples of the lift; 0 = none
    seed: int = 0


@dataclass(frozen=True)
class ArmResult:
    name: str
    weight: float
    users: int
    first_users: int
    requests: int
    exposures: int
    clicks: int
    orphan_clicks: int
    ctr: float
    ctr_ci: tuple[float, float]
    lift: Lift | None = None
    lift_bootstrap: tuple[float, float] | None = None
    replay: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SrmResult:
    chi2: float
    dof: int
    p_value: float
    alpha: float
    counts: dict[str, int]
    weights: dict[str, float]
    untested: dict[str, int]  # zero-weight arms -> their users

    @property
    def passed(self) -> bool:
        return self.p_value >= self.alpha


@dataclass(frozen=True)
class Readout:
    experiment: str
    control: str
    arms: list[ArmResult]
    srm: SrmResult | None
    other_arm_events: dict[str, int]
    multi_arm_users: int
    events: int
    dropped_rows: int = 0

    def arm(self, name: str) -> ArmResult:
        return next(a for a in self.arms if a.name == name)


def experiment_of(settings: ServeSettings, name: str) -> ExperimentSettings:
    """The experiment called `name`; ValueError listing the known ones."""
    for experiment in settings.experiments:
        if experiment.name == name:
            return experiment
    raise ValueError(f"no experiment {name!r} in the serve config (known: {[e.name for e in settings.experiments]})")


def control_of(experiment: ExperimentSettings, control: str | None) -> str:
    """`control` when it is an arm of the experiment, the first arm when None; ValueError otherwise."""
    if control is None:
        return experiment.arms[0].name
    if experiment.arm(control) is None:
        raise ValueError(f"--control {control!r} is not an arm of {experiment.name!r} "
                         f"(arms: {[a.name for a in experiment.arms]})")
    return control


def check_srm(tallies: Tallies, experiment: ExperimentSettings, alpha: float) -> SrmResult | None:
    """Users by first assignment against the weights of the arms with weight > 0; None without such users."""
    tested = [a for a in experiment.arms if a.weight > 0]
    counts = {a.name: tallies.arms[a.name].first_users for a in tested}
    if sum(counts.values()) == 0:
        return None
    weights = {a.name: a.weight for a in tested}
    srm = srm_chi_square(list(counts.values()), list(weights.values()))
    untested = {a.name: tallies.arms[a.name].first_users for a in experiment.arms if a.weight <= 0}
    return SrmResult(srm.chi2, srm.dof, srm.p_value, alpha, counts, weights, untested)


def _lifts(arm: ArmTally, control: ArmTally, options: ReadoutOptions) -> tuple[Lift, tuple[float, float] | None]:
    """Delta-method lift (and the user bootstrap when asked); nan for an arm without exposures."""
    if arm.exposures == 0:
        return Lift(math.nan, math.nan, math.nan), None
    ctr = arm.clicks / arm.exposures
    ctr_c = control.clicks / control.exposures if control.exposures else 0.0
    lift = relative_lift(ctr, arm.exposures, ctr_c, control.exposures)
    if options.bootstrap <= 0:
        return lift, None
    users_t, users_c = list(arm.user_exposures), list(control.user_exposures)
    boot = bootstrap_lift([arm.user_clicks[u] for u in users_t], [arm.user_exposures[u] for u in users_t],
                          [control.user_clicks[u] for u in users_c], [control.user_exposures[u] for u in users_c],
                          n_resamples=options.bootstrap, seed=options.seed)
    return lift, boot


def _arm_result(name: str, weight: float, tallies: Tallies, control: str, options: ReadoutOptions,
                next_items: Mapping[str, Sequence[str]] | None) -> ArmResult:
    arm = tallies.arms[name]
    lift, boot = (None, None) if name == control else _lifts(arm, tallies.arms[control], options)
    replay = replay_metrics(arm.exposed_lists, next_items, options.ks) if next_items else {}
    return ArmResult(name=name, weight=weight, users=len(arm.users), first_users=arm.first_users,
                     requests=len(arm.requests), exposures=arm.exposures, clicks=arm.clicks,
                     orphan_clicks=arm.orphan_clicks, ctr=arm.clicks / arm.exposures if arm.exposures else math.nan,
                     ctr_ci=wilson_interval(arm.clicks, arm.exposures), lift=lift, lift_bootstrap=boot,
                     replay=replay)


def build_readout(events: Sequence[Event], experiment: ExperimentSettings, options: ReadoutOptions = ReadoutOptions(),
                  next_items: Mapping[str, Sequence[str]] | None = None, dropped_rows: int = 0) -> Readout:
    """The readout of `experiment` from normalised events (oldest first); next_items enables the replay."""
    control = control_of(experiment, options.control)
    tallies = tally(events, [a.name for a in experiment.arms])
    arms = [_arm_result(a.name, a.weight, tallies, control, options, next_items) for a in experiment.arms]
    return Readout(experiment=experiment.name, control=control, arms=arms,
                   srm=check_srm(tallies, experiment, options.srm_alpha),
                   other_arm_events=dict(tallies.other_arm_events), multi_arm_users=tallies.multi_arm_users,
                   events=sum(1 for e in events if e.arm in tallies.arms), dropped_rows=dropped_rows)
