"""Data files at a provider, uploaded at most once per content (DESIGN §4): an intent row
before the upload, a look for the file by its content-addressed name before any second
try, the bytes checked against the hash that was planned."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .datafiles import sha256_file
from .errors import ConfigError
from .ledger import Ledger
from .model import DesiredJob, upload_filename
from .providers.base import Driver


@dataclass
class Uploads:
    """One provider's uploads, recorded in the ledger."""

    ledger: Ledger
    driver: Driver
    provider: str  # the spec's provider: the name its file rows are kept under

    def ensure(self, path: Path, sha256: str) -> str:
        """The provider's id for a data file, uploading it at most once per content hash."""
        provider = self.provider
        row = self.ledger.file_row(provider, sha256)
        if row and row["status"] == "uploaded" and row["remote_id"]:
            return str(row["remote_id"])
        if row is not None:  # an upload intent from an interrupted run: look before uploading
            found = self.driver.find_file(sha256)
            if found is not None:
                self.ledger.file_uploaded(provider, sha256, found.id, found.filename)
                return found.id
        # the bytes must still be the ones checked and fingerprinted
        if sha256_file(path) != sha256:
            raise ConfigError(
                f"{path} changed after it was checked; run the command again to plan with it"
            )
        if row is None:
            self.ledger.file_intent(
                provider, sha256, upload_filename(sha256, path), path.stat().st_size
            )
        remote = self.driver.upload_file(path, sha256)
        self.ledger.file_uploaded(provider, sha256, remote.id, remote.filename)
        return remote.id

    def stale(self, want: DesiredJob, training_id: str, validation_id: str | None) -> bool:
        """Whether a file id the ledger gave is unknown to the provider now (its state was
        lost or the file deleted): such rows are forgotten, so the next pass uploads again."""
        provider, driver = self.provider, self.driver
        stale = False
        for sha, file_id in (
            (want.training_sha256, training_id),
            (want.validation_sha256, validation_id),
        ):
            if sha is None or file_id is None:
                continue
            found = driver.find_file(sha)
            if found is None or found.id != file_id:
                self.ledger.file_forget(provider, sha)
                stale = True
        return stale
