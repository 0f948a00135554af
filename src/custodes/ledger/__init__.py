"""Signed notes, signing keys and the request notes that authorise admin calls (audit log: later issue)."""

from custodes.ledger.note import NoteError, NoteKey, SignedNote, add_signature, parse_note, verify_note

__all__ = ["NoteError", "NoteKey", "SignedNote", "add_signature", "parse_note", "verify_note"]
