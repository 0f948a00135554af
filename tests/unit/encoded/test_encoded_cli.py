"""``custodes encoded campaign`` through typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from custodes.cli._encoded import encoded_app

RUNNER = CliRunner()


def test_campaign_table() -> None:
    result = RUNNER.invoke(encoded_app, ["campaign", "--kernel", "dosage", "--faults", "20", "--model", "bitflip"])
    assert result.exit_code == 0, result.output
    assert "dosage" in result.output and "encoded" in result.output and "unencoded" in result.output
    assert "[95% CI]" in result.output or "95% CI" in result.output


def test_campaign_json_counts_per_kernel_model_and_variant() -> None:
    args = ["campaign", "-k", "pid", "-k", "checksum", "-n", "15", "-m", "bitflip", "-m", "lost_update", "--json"]
    result = RUNNER.invoke(encoded_app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["code"] == {"A": 58659, "scheme": "ANBD", "kbits": 32, "nbits": 64}
    pid = doc["results"]["pid"]
    assert set(pid) == {"bitflip", "lost_update"}
    for variant in ("encoded", "unencoded"):
        cell = pid["bitflip"][variant]
        assert set(cell["counts"]) == {"detected", "masked", "sdc", "crash", "timeout"}
        assert sum(cell["counts"].values()) == cell["n"] == 15
    assert doc["results"]["checksum"]["lost_update"]["encoded"]["n"] == 0  # no stores in the checksum
    assert doc["summary"]["encoded"]["sdc"] == 0
    assert doc["summary"]["unencoded"]["sdc"] > 0


def test_scheme_option_and_errors() -> None:
    result = RUNNER.invoke(encoded_app, ["campaign", "-k", "dosage", "-n", "10", "-m", "faulty_op", "--scheme", "AN"])
    assert result.exit_code == 0 and "AN, A=58659" in result.output
    assert RUNNER.invoke(encoded_app, ["campaign", "-k", "nope"]).exit_code == 2
    assert RUNNER.invoke(encoded_app, ["campaign", "-k", "dosage", "-m", "cosmic"]).exit_code == 2
    assert RUNNER.invoke(encoded_app, ["campaign", "-k", "dosage", "--A", "65536"]).exit_code == 2


def test_exhaustive_mode() -> None:
    result = RUNNER.invoke(encoded_app, ["campaign", "-k", "dosage", "--exhaustive", "--json"])
    assert result.exit_code == 0, result.output
    cell = json.loads(result.output)["results"]["dosage"]["bitflip-exhaustive"]
    assert cell["encoded"]["counts"]["sdc"] == 0
    assert cell["encoded"]["n"] > 50_000
    assert cell["unencoded"]["counts"]["sdc"] > 0


def test_checks_option() -> None:
    for checks in ("deferred", "every-op"):
        args = ["campaign", "-k", "bubblesort", "-n", "20", "-m", "exchange", "--checks", checks, "--json"]
        result = RUNNER.invoke(encoded_app, args)
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output)
        assert doc["checks"] == checks
        assert doc["summary"]["encoded"]["sdc"] == 0 and doc["summary"]["encoded"]["detected"] > 0
    table = RUNNER.invoke(encoded_app, ["campaign", "-k", "dosage", "-n", "5", "-m", "bitflip"])
    assert "checks=deferred" in table.output  # the default
    assert RUNNER.invoke(encoded_app, ["campaign", "-k", "dosage", "--checks", "never"]).exit_code == 2
