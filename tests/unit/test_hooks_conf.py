"""The ingest hooks are declared in conf/ingest.yaml, in order (issue 14, item 2)."""

from __future__ import annotations

import argparse
from dataclasses import replace

import pytest

from feedlake.app.cli import DEFAULT_HOOKS, ingest_hooks
from feedlake.derived.activity import ActivityHook
from feedlake.derived.metric_rollup import MetricsHook
from feedlake.derived.remaps import EntityMapHook
from feedlake.ingest.hooks import IngestHook
from feedlake.quality.checks import QualityGate
from feedlake.settings.config import ConfigError, FeedlakeConfig, load_config

PACKAGED = argparse.Namespace(conf=None)


class Recording(IngestHook):
    """A hook a user declares in conf: it is built with the run's config."""

    def __init__(self, config: FeedlakeConfig):
        self.config = config

    @classmethod
    def from_conf(cls, config: FeedlakeConfig, conf_dir: str | None) -> Recording:
        return cls(config)


def with_hooks(*refs: str) -> FeedlakeConfig:
    return load_config(None, {"hooks": list(refs)})


def test_the_packaged_conf_declares_the_hooks_in_their_order():
    hooks, gate = ingest_hooks(PACKAGED, load_config())
    assert [type(h) for h in hooks] == [EntityMapHook, MetricsHook, ActivityHook, QualityGate]
    assert gate is hooks[-1]


def test_a_conf_without_hooks_keeps_the_former_list():
    config = load_config()
    older = replace(config, job={k: v for k, v in config.job.items() if k != "hooks"})
    hooks, _ = ingest_hooks(PACKAGED, older)
    assert [f"{type(h).__module__}:{type(h).__name__}" for h in hooks] == list(DEFAULT_HOOKS)


def test_declared_hooks_are_built_in_order_with_the_config():
    config = with_hooks(f"{__name__}:Recording", "feedlake.derived.activity:ActivityHook")
    hooks, gate = ingest_hooks(PACKAGED, config)
    assert [type(h) for h in hooks] == [Recording, ActivityHook]
    assert hooks[0].config is config
    assert gate is None  # no quality gate declared: the run's exit code never reports quality


def test_no_hooks():
    assert ingest_hooks(PACKAGED, with_hooks()) == ([], None)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("feedlake.derived.activity.ActivityHook", "expected 'package.module:name'"),
        ("feedlake.no_such_module:Hook", "No module named 'feedlake.no_such_module'"),
        ("feedlake.derived.activity:NoSuchHook", "has no attribute 'NoSuchHook'"),
        ("feedlake.settings.config:ConfigError", "not a subclass of feedlake.ingest.hooks.IngestHook"),
    ],
)
def test_a_bad_declaration_is_a_config_error_naming_it(ref, message):
    with pytest.raises(ConfigError, match="hook") as raised:
        ingest_hooks(PACKAGED, with_hooks(ref))
    assert ref in str(raised.value) and message in str(raised.value)


def test_hooks_must_be_a_list_of_references():
    with pytest.raises(ConfigError, match="expected a list"):
        ingest_hooks(PACKAGED, load_config(None, {"hooks": "feedlake.derived.activity:ActivityHook"}))
