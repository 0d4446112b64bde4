"""The optional extras: a missing package gets one line naming the extra to install."""

import pytest

from convscope import extras
from convscope.extras import EXTRAS, MissingExtra, require


def test_require_imports_an_installed_module():
    assert require("json", "plot").dumps([1]) == "[1]"


def test_a_missing_module_names_its_extra(monkeypatch):
    monkeypatch.setitem(EXTRAS, "osc", extras.Extra("osc", "OSC streams", ("no_such_module_x",)))
    with pytest.raises(MissingExtra) as error:
        require("no_such_module_x.sub", "osc")
    assert str(error.value) == ('OSC streams needs the no_such_module_x package, which is not '
                                'installed: pip install "convscope[osc]"')
    assert extras.missing("osc") == ["no_such_module_x"] and not extras.available("osc")


def test_the_feature_named_by_the_caller_leads_the_message():
    with pytest.raises(MissingExtra, match=r"^convscope stream needs the nope_pkg package"):
        require("nope_pkg", "osc", feature="convscope stream")
