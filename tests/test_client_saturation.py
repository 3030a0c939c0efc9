"""The rule that says when the client itself was saturated (docs/client.md#when-the-client-is-saturated)."""

from __future__ import annotations

import pytest

from chatflow.client.figures import client_load_figures
from chatflow.client.saturation import BUSY_FRACTION, WAIT_SHARE, client_load
from chatflow.client.summary import saturation_text


def test_cores_used_are_client_cpu_over_the_phases() -> None:
    load = client_load(client_cpu_s=15.0, phases_s=20.0, cores=2)
    assert load.cores_used == pytest.approx(0.75)
    assert load.ceiling == 1  # one process, one GIL
    assert not load.busy and not load.saturated


def test_busy_at_the_fraction_of_one_core_for_one_process() -> None:
    assert client_load(BUSY_FRACTION * 10, 10.0, cores=2).busy
    assert not client_load(BUSY_FRACTION * 10 - 0.01, 10.0, cores=2).busy
    # Kernel work beside the GIL can take a process past one core: still busy.
    assert client_load(17.0, 10.0, cores=2).busy


def test_processes_raise_the_ceiling_up_to_the_cores() -> None:
    assert client_load(12.0, 10.0, cores=2, processes=2).ceiling == 2
    assert not client_load(12.0, 10.0, cores=2, processes=2).busy
    assert client_load(16.0, 10.0, cores=2, processes=4).ceiling == 2
    assert client_load(16.0, 10.0, cores=2, processes=4).busy
    assert client_load(9.0, 10.0, cores=None, processes=1).ceiling == 1


def test_replies_waiting_in_the_client_saturate_it_too() -> None:
    load = client_load(2.0, 10.0, cores=2, wait_share=WAIT_SHARE)
    assert load.waiting and not load.busy and load.saturated
    assert not client_load(2.0, 10.0, cores=2, wait_share=WAIT_SHARE - 0.01).saturated
    assert not client_load(2.0, 10.0, cores=2, wait_share=None).waiting


def test_no_verdict_without_a_cpu_figure_or_a_phase() -> None:
    assert client_load(None, 10.0, cores=2) is None
    assert client_load(1.0, 0.0, cores=2) is None


def test_the_summary_says_why() -> None:
    both = saturation_text(client_load_figures(client_load(17.0, 10.0, cores=2, wait_share=0.4)))
    assert both.startswith("yes: 1.70 cores used of the 1 core its Python code can use (2 on the machine)")
    assert "waited 40% of the mean latency" in both
    assert both.endswith("the figures measure the client as much as the server")
    assert saturation_text(client_load_figures(client_load(3.0, 10.0, cores=2))).startswith("no: 0.30 cores used")
