"""Every malformed policy is refused with the exact ``FILE:LINE:COL: message`` of its first error."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from policy_fixtures import FP, MINIMAL, SIM

from custodes.errors import PolicyError
from custodes.ledger.keys import fingerprint, public_pem
from custodes.policy import load_policy


def edit(old: str, new: str, base: str = MINIMAL) -> str:
    if old not in base:
        raise AssertionError(f"test case edits text that is not in the base policy: {old!r}")
    return base.replace(old, new, 1)


MEAS = f'      - {{tee: simulated, measurement: "{SIM}"}}\n'
CMD = '    command: [app, "$$custodes::pw$$"]\n'
SECRET = "  - {name: pw, kind: ascii}\n"


def measurement(body: str) -> str:
    return edit(MEAS, f"      - {{{body}}}\n")


def service_line(line: str) -> str:
    return edit(CMD, f"{CMD}    {line}\n")


def extra_secrets(*lines: str) -> str:
    return edit(SECRET, SECRET + "".join(f"  - {{{line}}}\n" for line in lines))


def deprecated_since(since: str) -> str:
    return measurement(f'tee: simulated, measurement: "{SIM}", deprecated: {{since: {since}, advisory: X}}')


H64, H96 = "c" * 64, "d" * 96
FIVE_RTMRS = ", ".join([f'"{H96}"'] * 5)
#: One Ed25519 key, spelled as a PEM (one line, as in a flow mapping) and as its fingerprint.
_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
KEY_PEM, KEY_FP = public_pem(_KEY).replace("\n", "\\n"), fingerprint(_KEY)
OUT_OF_RANGE = "timestamp is out of range (expected 0001-01-01T00:00:00Z to 8999-12-31T23:59:59Z)"
SNP = f'tee: sev-snp, measurement: "{H96}", min_tcb: '

CASES = [
    ("yaml syntax error", edit("name: t/p", "name: t/p: x"),
     "1:10: YAML syntax error: mapping values are not allowed in this context"),
    ("control character", edit("name: t/p", "name: t/p\x07"),
     "1:10: YAML syntax error: control characters are not allowed"),
    ("not utf-8", b"name: \xff\n", "1:7: policy is not valid UTF-8"),
    ("empty document", "", "1:1: the policy is empty"),
    ("document is a list", "- a\n- b\n", "1:1: expected a mapping"),
    ("two documents", MINIMAL + "---\na: 1\n", "12:1: expected a single YAML document"),
    ("duplicate mapping key", edit("name: t/p\n", "name: t/p\nname: t/q\n"), "2:1: duplicate key 'name'"),
    ("anchor", edit("name: t/p", "name: &n t/p"), "1:7: YAML anchors are not allowed"),
    ("alias", "a: *x\n", "1:4: YAML aliases are not allowed"),
    ("merge key", edit("access:\n", "access:\n  <<: {read: []}\n"), "4:3: YAML merge keys are not allowed"),
    ("tag", edit("name: t/p", "name: !!str t/p"), "1:7: YAML tags are not allowed"),
    ("too deep", "a: " + "[" * 40 + "]" * 40, "1:35: nesting is deeper than 32 levels"),
    ("mapping as key", "? {a: 1}\n: b\n", "1:3: mapping keys must be plain text"),
    ("bad policy name", edit("name: t/p", "name: T/P"),
     "1:7: name: invalid policy name 'T/P' (must match [a-z0-9][a-z0-9._-]{0,62}(?:/[a-z0-9][a-z0-9._-]{0,62}){0,7})"),
    ("unknown top-level key", edit("access:", "acess: {}\naccess:"), "3:1: unknown key 'acess'"),
    ("unknown service key", service_line("comand: [x]"), "10:5: services[0]: unknown key 'comand'"),
    ("missing access", edit("access:\n  update: {signers: [alice]}\n", ""), "1:1: missing required key 'access'"),
    ("missing command", edit(CMD, ""), "6:5: services[0]: missing required key 'command'"),
    ("wrong type: size as string", edit("kind: ascii}", "kind: ascii, size: '3'}"),
     "11:35: secrets[0].size: expected an integer"),
    ("wrong type: allow_debug as string", edit("access:", "security: {allow_debug: 'yes'}\naccess:"),
     "3:25: security.allow_debug: expected true or false"),
    ("wrong type: command is a string", edit(CMD, "    command: app\n"), "9:14: services[0].command: expected a list"),
    ("predecessor of wrong length", edit("name: t/p\n", 'name: t/p\npredecessor: "abc"\n'),
     "2:14: predecessor: expected 64 hex digits, got 3"),
    ("measurement hex too short", measurement(f'tee: simulated, measurement: "{SIM[:-2]}"'),
     "8:39: services[0].measurements[0].measurement: expected 96 hex digits, got 94"),
    ("measurement hex not hex", measurement(f'tee: simulated, measurement: "{"z" * 96}"'),
     "8:39: services[0].measurements[0].measurement: expected 96 hex digits, found a non-hex character"),
    ("unquoted numeric hex", measurement("tee: sgx-dcap, mrenclave: 1234"),
     "8:36: services[0].measurements[0].mrenclave: expected a quoted string of 64 hex digits"),
    ("unknown tee", measurement("tee: sgx"),
     "8:15: services[0].measurements[0].tee: unknown tee 'sgx' (expected one of: 'simulated', 'sgx-dcap', 'tdx', "
     "'sev-snp')"),
    ("missing tee", measurement(f'measurement: "{SIM}"'),
     "8:9: services[0].measurements[0]: missing required key 'tee'"),
    ("sgx without identity", measurement("tee: sgx-dcap, isv_prod_id: 1"),
     "8:9: services[0].measurements[0]: sgx-dcap measurement needs mrenclave or mrsigner"),
    ("sgx mrsigner without product id", measurement(f'tee: sgx-dcap, mrsigner: "{H64}"'),
     "8:9: services[0].measurements[0]: sgx-dcap measurement with mrsigner but no mrenclave needs isv_prod_id"),
    ("isv_svn out of range", measurement(f'tee: sgx-dcap, mrenclave: "{H64}", min_isv_svn: 70000'),
     "8:117: services[0].measurements[0].min_isv_svn: must be at most 65535"),
    ("tdx with five rtmrs", measurement(f'tee: tdx, mrtd: "{H96}", rtmr: [{FIVE_RTMRS}]'),
     "8:132: services[0].measurements[0].rtmr: needs at most 4 items, got 5"),
    ("no measurements", edit(MEAS, "").replace("measurements:", "measurements: []"),
     "7:19: services[0].measurements: needs at least 1 item, got 0"),
    ("empty command", edit(CMD, "    command: []\n"), "9:14: services[0].command: needs at least 1 item, got 0"),
    ("naive deprecation timestamp",
     measurement(f'tee: simulated, measurement: "{SIM}", deprecated: {{since: 2026-01-01 00:00:00, advisory: X}}'),
     "8:159: services[0].measurements[0].deprecated.since: timestamp has no time zone (add 'Z' for UTC)"),
    ("duplicate service name",
     edit("secrets:", "  - name: api\n    measurements:\n" + MEAS + "    command: [x]\nsecrets:"),
     "10:11: services[1].name: duplicate service name 'api'"),
    ("duplicate secret name", extra_secrets("name: pw, kind: binary"),
     "12:12: secrets[1].name: duplicate secret name 'pw'"),
    ("duplicate file path", service_line("files: [{path: /a, content: x}, {path: /a, content: y}]"),
     "10:44: services[0].files[1].path: duplicate file path '/a'"),
    ("relative file path", service_line("files: [{path: etc/a, content: x}]"),
     "10:20: services[0].files[0].path: path 'etc/a' must be absolute"),
    ("file path with ..", service_line("files: [{path: /etc/../a, content: x}]"),
     "10:20: services[0].files[0].path: path '/etc/../a' must not contain '..'"),
    ("file path not normalised", service_line("files: [{path: /etc//a, content: x}]"),
     "10:20: services[0].files[0].path: path '/etc//a' is not normalised (expected '/etc/a')"),
    ("relative cwd", service_line("cwd: srv"), "10:10: services[0].cwd: path 'srv' must be absolute"),
    ("mode as a YAML integer", service_line("files: [{path: /a, mode: 0600, content: x}]"),
     '10:30: services[0].files[0].mode: file mode must be a quoted octal string such as "0600"'),
    ("mode not octal", service_line('files: [{path: /a, mode: "0800", content: x}]'),
     "10:30: services[0].files[0].mode: invalid file mode '0800' (expected an octal string such as \"0600\", at most "
     "0777)"),
    ("bad duration", service_line("lease: {ttl: 5x}"),
     "10:18: services[0].lease.ttl: invalid duration '5x' (expected e.g. '30s', '15m', '1h', '7d' or '1h30m')"),
    ("zero ttl", service_line("lease: {ttl: 0s}"), "10:18: services[0].lease.ttl: duration must be longer than 0s"),
    ("duration too long", extra_secrets("name: ca, kind: x509-ca, common_name: C, valid_for: 36501d"),
     "12:58: secrets[1].valid_for: duration '36501d' is longer than 36500d"),
    ("bad environment name", service_line("environment: {bad-name: x}"),
     "10:19: services[0].environment.bad-name: invalid environment variable name 'bad-name' (must match "
     "[A-Za-z_][A-Za-z0-9_]{0,255})"),
    ("inherited and set", service_line("environment: {TZ: UTC}\n    inherit_env: [TZ]"),
     "11:19: services[0].inherit_env[0]: 'TZ' is also set under environment"),
    ("unknown placeholder secret", edit("custodes::pw$$", "custodes::pwx$$"),
     "9:20: services[0].command[1]: placeholder names unknown secret 'pwx'"),
    ("unknown placeholder format", edit("custodes::pw$$", "custodes::pw:pem$$"),
     "9:20: services[0].command[1]: ascii secret 'pw' has no format 'pem' (formats: base64, hex)"),
    ("malformed placeholder", edit("custodes::pw$$", "custodes::PW$$"),
     "9:20: services[0].command[1]: malformed placeholder '$$custodes::PW$$' (expected $$custodes::NAME$$ or "
     "$$custodes::NAME:FORMAT$$)"),
    ("binary explicit as text", edit('"$$custodes::pw$$"', '"$$custodes::raw$$"')
     .replace(SECRET, SECRET + "  - {name: raw, kind: explicit, value: ff00, encoding: hex}\n"),
     "9:20: services[0].command[1]: explicit secret 'raw' is not UTF-8 text: use :hex or :base64"),
    ("bad secret name", edit("name: pw,", "name: Pw,"),
     "11:12: secrets[0].name: invalid secret name 'Pw' (must match [a-z_][a-z0-9_]{0,63})"),
    ("unknown secret kind", edit("kind: ascii", "kind: asci"),
     "11:22: secrets[0].kind: unknown kind 'asci' (expected one of: 'ascii', 'binary', 'private-key', 'x509-ca', "
     "'x509', 'explicit')"),
    ("alphabet with repeats", edit("kind: ascii}", "kind: ascii, alphabet: aab}"),
     "11:39: secrets[0].alphabet: alphabet must not repeat characters (repeats would bias the choice)"),
    ("bad key algorithm", extra_secrets("name: k, kind: private-key, algorithm: rsa-1024"),
     "12:45: secrets[1].algorithm: unexpected value 'rsa-1024' (expected 'ec-p256', 'ec-p384', 'ed25519' or "
     "'rsa-3072')"),
    ("issuer unknown", extra_secrets("name: c, kind: x509, issuer: nope, dns: [a]"),
     "12:35: secrets[1].issuer: issuer 'nope' is not a declared secret"),
    ("issuer not a CA", extra_secrets("name: c, kind: x509, issuer: pw, dns: [a]"),
     "12:35: secrets[1].issuer: issuer 'pw' is not an x509-ca secret (kind: ascii)"),
    ("issuer cycle", extra_secrets("name: a, kind: x509-ca, common_name: A, issuer: b",
                                   "name: b, kind: x509-ca, common_name: B, issuer: a"),
     "12:54: secrets[1].issuer: issuer cycle: a -> b -> a"),
    ("self-issued CA", extra_secrets("name: a, kind: x509-ca, common_name: A, issuer: a"),
     "12:54: secrets[1].issuer: issuer cycle: a -> a"),
    ("leaf without subjectAltName", extra_secrets("name: ca, kind: x509-ca, common_name: C",
                                                  "name: c, kind: x509, issuer: ca"),
     "13:5: secrets[2]: x509 certificate needs at least one dns or ip entry (verifiers require a subjectAltName)"),
    ("bad IP address", extra_secrets("name: ca, kind: x509-ca, common_name: C",
                                     "name: c, kind: x509, issuer: ca, ip: [10.0.0.300]"),
     "13:44: secrets[2].ip[0]: invalid IP address '10.0.0.300'"),
    ("access names undeclared key", edit("signers: [alice]", "signers: [alice, bob]"),
     "4:29: access.update.signers[1]: key 'bob' is not declared under keys"),
    ("read names undeclared key", edit("  update:", "  read: [carol]\n  update:"),
     "4:10: access.read[0]: key 'carol' is not declared under keys"),
    ("threshold above signers", edit("signers: [alice]", "signers: [alice], threshold: 2"),
     "4:41: access.update.threshold: threshold 2 must be between 1 and the number of signers (1)"),
    ("threshold zero", edit("signers: [alice]", "signers: [alice], threshold: 0"),
     "4:41: access.update.threshold: threshold 0 must be between 1 and the number of signers (1)"),
    ("signer listed twice", edit("signers: [alice]", "signers: [alice, alice]"),
     "4:29: access.update.signers[1]: signer 'alice' is listed twice"),
    ("bad key PEM", edit(f'"{FP}"', '"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n"'),
     "2:15: keys.alice: not a PEM public key or a 'sha256:<64 hex>' fingerprint"),
    ("bad fingerprint", edit(FP, "sha256:abc"),
     "2:15: keys.alice: invalid key fingerprint (expected 'sha256:' and 64 hex digits)"),
    ("accepting Revoked", edit("access:", "security: {tcb: {accept: [Revoked]}}\naccess:"),
     "3:27: security.tcb.accept[0]: a policy can never accept Revoked platforms"),
    ("unknown TCB status", edit("access:", "security: {tcb: {accept: [Fine]}}\naccess:"),
     "3:27: security.tcb.accept[0]: unknown TCB status 'Fine' (expected one of: UpToDate, SWHardeningNeeded, "
     "ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded)"),
    ("base-60 number", edit("kind: ascii}", "kind: ascii, size: 1:30}"),
     "11:35: YAML base-60 numbers are not allowed (quote the value if it is text)"),
    ("over-long number", edit("kind: ascii}", "kind: ascii, size: 1" + "0" * 64 + "}"),
     "11:35: number is longer than 64 characters"),
    ("impossible date", deprecated_since("2026-02-30T00:00:00Z"),
     "8:159: invalid YAML timestamp (quote the value if it is text)"),
    ("unquoted explicit value YAML cannot read", extra_secrets("name: pin, kind: explicit, value: 2024-19-37"),
     "12:40: invalid YAML timestamp (quote the value if it is text)"),
    ("one key as a PEM and as its fingerprint", edit(f'alice: "{FP}"', f'alice: "{KEY_PEM}", bob: "{KEY_FP}"'),
     "2:140: keys.bob: key 'bob' is the same key as 'alice'"),
    ("one fingerprint under two names", edit(f'"{FP}"', f'"{FP}", bob: "sha256:{"A" * 64}"'),
     "2:95: keys.bob: key 'bob' is the same key as 'alice'"),
    ("timestamp after year 9999 in UTC", deprecated_since("9999-12-31T23:59:59-01:00"),
     f"8:159: services[0].measurements[0].deprecated.since: {OUT_OF_RANGE}"),
    ("timestamp before year 1 in UTC", deprecated_since("0001-01-01T00:00:00+01:00"),
     f"8:159: services[0].measurements[0].deprecated.since: {OUT_OF_RANGE}"),
    ("timestamp too late to add a grace to", deprecated_since("9000-01-01T00:00:00Z"),
     f"8:159: services[0].measurements[0].deprecated.since: {OUT_OF_RANGE}"),
    ("min_tcb as a string", measurement(SNP + '{bootloader: "3", tee: 0, snp: 1, microcode: 1}'),
     "8:159: services[0].measurements[0].min_tcb.bootloader: expected an integer"),
    ("min_tcb as a boolean", measurement(SNP + "{bootloader: 3, tee: true, snp: 1, microcode: 1}"),
     "8:167: services[0].measurements[0].min_tcb.tee: expected an integer"),
    ("min_tcb as a float", measurement(SNP + "{bootloader: 3, tee: 0, snp: 1.0, microcode: 1}"),
     "8:175: services[0].measurements[0].min_tcb.snp: expected an integer"),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=n) for n, t, e in CASES])
def test_malformed_policy_is_refused_with_position(text: str | bytes, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(text, source="p.yaml")
    assert info.value.code == "POLICY_INVALID"
    assert info.value.message == f"p.yaml:{expected}"
    assert info.value.reasons[0] == f"p.yaml:{expected}"


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({name for name, _, _ in CASES}) == len(CASES)


def test_every_error_is_reported_in_document_order() -> None:
    text = edit("name: t/p", "name: T").replace("kind: ascii}", "kind: ascii, size: 0}").replace("comand", "")
    with pytest.raises(PolicyError) as info:
        load_policy(text, source="p.yaml")
    assert info.value.reasons == [
        "p.yaml:1:7: name: invalid policy name 'T' (must match [a-z0-9][a-z0-9._-]{0,62}"
        "(?:/[a-z0-9][a-z0-9._-]{0,62}){0,7})",
        "p.yaml:11:35: secrets[0].size: must be at least 1",
    ]


def test_all_cross_field_errors_are_reported() -> None:
    text = edit("signers: [alice]", "signers: [alice, bob]").replace("custodes::pw$$", "custodes::nope$$")
    with pytest.raises(PolicyError) as info:
        load_policy(text, source="p.yaml")
    assert info.value.reasons == [
        "p.yaml:4:29: access.update.signers[1]: key 'bob' is not declared under keys",
        "p.yaml:9:20: services[0].command[1]: placeholder names unknown secret 'nope'",
    ]


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(b"#" * (1024 * 1024 + 1), source="big.yaml")
    assert info.value.message == "big.yaml:1:1: policy is larger than 1048576 bytes"


def test_billion_laughs_is_refused_at_the_first_anchor() -> None:
    lines = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    with pytest.raises(PolicyError) as info:
        load_policy("\n".join(lines), source="lol.yaml")
    assert info.value.message == "lol.yaml:1:5: YAML anchors are not allowed"


def test_error_messages_never_quote_explicit_values() -> None:
    text = edit(SECRET, SECRET + "  - {name: tok, kind: explicit, value: 'zz-TOPSECRET', encoding: hex}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(text, source="p.yaml")
    assert info.value.message == "p.yaml:12:5: secrets[1]: value is not valid hex"
    assert "TOPSECRET" not in str(info.value.reasons)
