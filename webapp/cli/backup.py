"""`docent backup create DEST | verify SRC | restore SRC [--replace]` (webapp/backup.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from webapp.backup import BackupError, Manifest, create_backup, restore_backup, verify_backup


def backup(args, settings, as_json: bool) -> int:
    home = Path(settings.home)
    say = (lambda line: None) if as_json else (lambda line: print(line, file=sys.stderr))
    try:
        if args.action == "create":
            manifest = create_backup(home, Path(args.path), report=say)
            done = f"backed up {home} into {args.path}"
        elif args.action == "verify":
            manifest = verify_backup(Path(args.path))
            done = f"{args.path} verifies: every file whole, every database sound"
        else:
            manifest = restore_backup(Path(args.path), home, replace=args.replace, report=say)
            _rebuild_indexes(settings, manifest, say)
            done = f"restored {args.path} into {home}, and verified it"
    except (BackupError, OSError) as exc:
        print(f"docent: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(
            json.dumps({"created": manifest.created, "collections": manifest.collections, "files": len(manifest.files)})
        )
    else:
        print(f"{done} (taken {manifest.created}; {_summary(manifest)})")
    return 0


def _rebuild_indexes(settings, manifest: Manifest, say) -> None:
    """Opens each restored collection: its indexes are rebuilt from the database and saved, and
    its counts are checked against the manifest."""
    from retrieval.service import Docent

    docent = Docent(settings)
    try:
        for name, counts in manifest.collections.items():
            held = docent.collection(name).counts()
            if held != (counts["documents"], counts["chunks"]):
                raise BackupError(f"collection '{name}' restored with {held}, the backup holds {counts}")
            say(f"{name}: indexes rebuilt for {counts['chunks']} passages")
    finally:
        docent.close()


def _summary(manifest: Manifest) -> str:
    documents = sum(c["documents"] for c in manifest.collections.values())
    return f"{len(manifest.collections)} collections, {documents} documents, {len(manifest.files)} files"
