"""Intel TCB info (v2, v3) and enclave identity (v2): parsing and TCB level matching. Pure; no crypto.

The JSON is parsed only after its signature was checked over the exact served bytes (see ``dcap.py``).
Duplicate keys, unknown statuses, bad hex and missing fields raise ``CollateralError(COLLATERAL_MALFORMED)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from custodes.errors import CollateralError
from custodes.evidence.claims import TCB_STATUSES

__all__ = [
    "EnclaveIdentity",
    "IsvLevel",
    "ModuleIdentity",
    "TcbInfo",
    "TcbLevel",
    "converge",
    "masked_equal",
    "match_isv",
    "superseded_at",
]

_QE_STATUSES = frozenset({"UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "OutOfDate", "Revoked"})


def _loads(text: str) -> dict[str, Any]:
    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            raise ValueError("duplicate JSON key")
        return out

    value = json.loads(text, object_pairs_hook=no_dupes)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _date(value: Any) -> datetime:
    if not isinstance(value, str) or not value.endswith("Z"):
        raise ValueError("dates must be UTC ISO 8601 with Z")
    return datetime.fromisoformat(value)


def _hex(value: Any, size: int) -> bytes:
    if not isinstance(value, str):
        raise ValueError("hex field is not a string")
    out = bytes.fromhex(value)
    if len(out) != size:
        raise ValueError("hex field has the wrong size")
    return out


def _int(value: Any, upper: int = 0xFFFF) -> int:
    if type(value) is not int or not 0 <= value <= upper:
        raise ValueError("integer field out of range")
    return value


def _advisories(level: dict[str, Any]) -> tuple[str, ...]:
    ids = level.get("advisoryIDs", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("advisoryIDs must be a list of strings")
    return tuple(ids)


def _wrap(kind: str, parse: Any, text: str) -> Any:
    try:
        return parse(_loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CollateralError("COLLATERAL_MALFORMED", f"{kind} is malformed") from exc


@dataclass(frozen=True, slots=True)
class IsvLevel:
    """A TCB level graded by a single ISVSVN (QE identity, TDX module identity)."""

    isvsvn: int
    tcb_date: datetime
    status: str
    advisories: tuple[str, ...]

    @classmethod
    def parse(cls, level: dict[str, Any], statuses: frozenset[str] | tuple[str, ...]) -> IsvLevel:
        status = level["tcbStatus"]
        if status not in statuses:
            raise ValueError("unknown tcbStatus")
        return cls(_int(level["tcb"]["isvsvn"]), _date(level["tcbDate"]), status, _advisories(level))


def match_isv(levels: tuple[IsvLevel, ...], isvsvn: int) -> IsvLevel | None:
    """The highest level whose isvsvn is <= ``isvsvn`` (levels are sorted here, not trusted to be)."""
    for level in sorted(levels, key=lambda lv: lv.isvsvn, reverse=True):
        if level.isvsvn <= isvsvn:
            return level
    return None


@dataclass(frozen=True, slots=True)
class TcbLevel:
    """A platform TCB level: 16 SGX component SVNs, the PCESVN and (TDX) 16 TDX component SVNs."""

    sgx_svns: tuple[int, ...]
    pcesvn: int
    tdx_svns: tuple[int, ...] | None
    tcb_date: datetime
    status: str
    advisories: tuple[str, ...]

    def matches(self, comp_svns: tuple[int, ...], pcesvn: int, tee_tcb_svn: bytes | None) -> bool:
        """Component-wise comparison (never a lexicographic CPUSVN compare).

        For TDX, bytes 0 and 1 of TEE_TCB_SVN are graded by the TDX module identity instead when byte 1
        (the module's major version) is non-zero, as Intel's QVL does.
        """
        if any(lv > pk for lv, pk in zip(self.sgx_svns, comp_svns, strict=True)) or self.pcesvn > pcesvn:
            return False
        if tee_tcb_svn is None:
            return True
        if self.tdx_svns is None:
            return False
        start = 2 if tee_tcb_svn[1] > 0 else 0
        return all(self.tdx_svns[i] <= tee_tcb_svn[i] for i in range(start, 16))


@dataclass(frozen=True, slots=True)
class ModuleIdentity:
    """A TDX module identity (``tdxModule`` or an entry of ``tdxModuleIdentities``)."""

    id: str
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes
    levels: tuple[IsvLevel, ...]

    @classmethod
    def parse(cls, obj: dict[str, Any], default_id: str = "") -> ModuleIdentity:
        levels = tuple(IsvLevel.parse(lv, TCB_STATUSES) for lv in obj.get("tcbLevels", []))
        return cls(
            str(obj.get("id", default_id)),
            _hex(obj["mrsigner"], 48),
            _hex(obj["attributes"], 8),
            _hex(obj["attributesMask"], 8),
            levels,
        )


def _svns(components: Any) -> tuple[int, ...]:
    if not isinstance(components, list) or len(components) != 16:
        raise ValueError("need 16 TCB components")
    return tuple(_int(c["svn"], 255) for c in components)


@dataclass(frozen=True, slots=True)
class TcbInfo:
    """A parsed ``tcbInfo`` body (SGX v2/v3, TDX v3)."""

    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    evaluation_data_number: int
    levels: tuple[TcbLevel, ...]
    tdx_module: ModuleIdentity | None
    tdx_module_identities: tuple[ModuleIdentity, ...]

    @classmethod
    def from_json(cls, text: str) -> TcbInfo:
        return _wrap("TCB info", cls._parse, text)

    @classmethod
    def _parse(cls, obj: dict[str, Any]) -> TcbInfo:
        version = _int(obj["version"])
        tcb_id = obj.get("id", "SGX") if version >= 3 else "SGX"
        if version not in (2, 3) or tcb_id not in ("SGX", "TDX") or _int(obj.get("tcbType", 0)) != 0:
            raise ValueError("unsupported TCB info version, id or tcbType")
        levels = []
        for lv in obj["tcbLevels"]:
            tcb = lv["tcb"]
            if version == 2:
                sgx = tuple(_int(tcb[f"sgxtcbcomp{i:02d}svn"], 255) for i in range(1, 17))
                tdx = None
            else:
                sgx = _svns(tcb["sgxtcbcomponents"])
                tdx = _svns(tcb["tdxtcbcomponents"]) if tcb_id == "TDX" else None
            status = lv["tcbStatus"]
            if status not in TCB_STATUSES:
                raise ValueError("unknown tcbStatus")
            levels.append(TcbLevel(sgx, _int(tcb["pcesvn"]), tdx, _date(lv["tcbDate"]), status, _advisories(lv)))
        if not levels:
            raise ValueError("no TCB levels")
        module = obj.get("tdxModule")
        return cls(
            id=tcb_id,
            version=version,
            issue_date=_date(obj["issueDate"]),
            next_update=_date(obj["nextUpdate"]),
            fmspc=_hex(obj["fmspc"], 6),
            pce_id=_hex(obj["pceId"], 2),
            evaluation_data_number=_int(obj["tcbEvaluationDataNumber"], 2**32),
            levels=tuple(levels),
            tdx_module=ModuleIdentity.parse(module, "TDX_00") if module is not None else None,
            tdx_module_identities=tuple(ModuleIdentity.parse(m) for m in obj.get("tdxModuleIdentities", [])),
        )

    def match(self, comp_svns: tuple[int, ...], pcesvn: int, tee_tcb_svn: bytes | None) -> TcbLevel | None:
        """The first level (Intel lists them newest first) that the platform meets, or None."""
        for level in self.levels:
            if level.matches(comp_svns, pcesvn, tee_tcb_svn):
                return level
        return None

    def module_identity(self, tee_tcb_svn: bytes) -> ModuleIdentity | None:
        """TDX 1.0 (major version 0) uses ``tdxModule``; later ones the entry ``TDX_%02X`` of the major version."""
        major = tee_tcb_svn[1]
        if major == 0:
            return self.tdx_module
        wanted = f"TDX_{major:02X}"
        return next((m for m in self.tdx_module_identities if m.id == wanted), None)


@dataclass(frozen=True, slots=True)
class EnclaveIdentity:
    """A parsed ``enclaveIdentity`` body (QE, TD_QE)."""

    id: str
    issue_date: datetime
    next_update: datetime
    evaluation_data_number: int
    miscselect: bytes
    miscselect_mask: bytes
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isvprodid: int
    levels: tuple[IsvLevel, ...]

    @classmethod
    def from_json(cls, text: str) -> EnclaveIdentity:
        return _wrap("QE identity", cls._parse, text)

    @classmethod
    def _parse(cls, obj: dict[str, Any]) -> EnclaveIdentity:
        if _int(obj["version"]) != 2 or obj["id"] not in ("QE", "TD_QE", "QVE"):
            raise ValueError("unsupported enclave identity version or id")
        return cls(
            id=obj["id"],
            issue_date=_date(obj["issueDate"]),
            next_update=_date(obj["nextUpdate"]),
            evaluation_data_number=_int(obj["tcbEvaluationDataNumber"], 2**32),
            miscselect=_hex(obj["miscselect"], 4),
            miscselect_mask=_hex(obj["miscselectMask"], 4),
            attributes=_hex(obj["attributes"], 16),
            attributes_mask=_hex(obj["attributesMask"], 16),
            mrsigner=_hex(obj["mrsigner"], 32),
            isvprodid=_int(obj["isvprodid"]),
            levels=tuple(IsvLevel.parse(lv, _QE_STATUSES) for lv in obj["tcbLevels"]),
        )


def converge(platform: str, other: str) -> str:
    """Intel's ``convergeTcbStatusWithQeTcbStatus`` (also used for the TDX module status)."""
    if other == "OutOfDate":
        if platform in ("UpToDate", "SWHardeningNeeded"):
            return "OutOfDate"
        if platform in ("ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"):
            return "OutOfDateConfigurationNeeded"
    if other == "Revoked":
        return "Revoked"
    return platform


def superseded_at(dates: list[datetime], matched: datetime) -> datetime | None:
    """The next TCB recovery after ``matched``: the earliest listed tcbDate strictly later, or None."""
    later = [d for d in dates if d > matched]
    return min(later) if later else None


def masked_equal(value: bytes, mask: bytes, expected: bytes, *, mask_expected: bool = False) -> bool:
    """``value & mask == expected`` (or ``== expected & mask``), byte-wise in report byte order."""
    if not len(value) == len(mask) == len(expected):
        return False
    v, m, e = (int.from_bytes(b, "big") for b in (value, mask, expected))
    return (v & m) == (e & m if mask_expected else e)
