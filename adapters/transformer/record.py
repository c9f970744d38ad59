"""A recorded sweep, to be re-run from its ``settings.json`` alone (``scmnet hydra --from-record``).

A report directory's ``settings.json`` records everything that determines its numbers
(:class:`~.sweep.SweepSettings`): the model and its identity, where the prompts came from and
their hash, the ablation, the number of patches, the seed, the noise scale, the limit and the
dtype. :class:`Record` reads it back and gives what a re-run needs -- the model to load, the prompts
(read again from their file, and refused if their content changed), the ablation -- and checks
the loaded model against the recorded identity (:meth:`Record.check`). The re-run itself is
:func:`~.hydra.rerun`.

Examples
--------
>>> import json, tempfile
>>> from scmnet.adapters.transformer.prompts import builtin_prompts
>>> from scmnet.adapters.transformer.ablations import Ablation, AblationKind
>>> folder = Path(tempfile.mkdtemp())
>>> recorded = SweepSettings.planned("SmolLM2-135M-Instruct", builtin_prompts(),
...                                  Ablation(AblationKind.ZERO, seed=3), limit=20)
>>> _ = (folder / "settings.json").write_text(json.dumps(recorded.to_json()))
>>> record = Record.read(folder)
>>> record.model is None, record.ablation(), record.settings.limit
(True, Ablation(kind=<AblationKind.ZERO: 'zero'>, patches=1, seed=3, noise_scale=3.0), 20)
>>> record.prompts().name
'builtin:facts'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scmnet.errors import InvalidArgument, InvalidDataset

from .ablations import Ablation, AblationKind
from .lm import EMBEDDED_MODEL
from .prompts import BUILTIN_SOURCE, PromptSet, builtin_prompts, load_prompts
from .sweep import SettingsMismatch, SweepSettings, differences, read_settings

__all__ = ["Record"]

_NOT_REPRODUCED = ("versions", "prompts_source")
"""Settings a re-run need not share with its record: the package versions (recorded anew in the
re-run's ``settings.json``) and the path the prompts were read from (their hash is compared)."""


@dataclass(frozen=True)
class Record:
    """A recorded sweep: its directory and the settings its ``settings.json`` holds.

    Attributes
    ----------
    folder : Path
        The report directory.
    settings : SweepSettings
        What its ``settings.json`` records.
    """

    folder: Path
    settings: SweepSettings

    @classmethod
    def read(cls, folder: str | Path) -> Record:
        """The record in ``folder``.

        Raises
        ------
        InvalidArgument
            If ``folder`` is not a directory or holds no ``settings.json``.
        DamagedFile
            If its ``settings.json`` cannot be read back (:func:`~.sweep.read_settings`).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise InvalidArgument(
                f"--from-record {str(folder)!r} is not a directory; give the --out directory "
                f"of an earlier scmnet hydra run"
            )
        advice = (
            "a re-run needs the settings it records; restore the file, or run scmnet hydra "
            "with explicit options instead of --from-record"
        )
        settings = read_settings(folder, advice=advice)
        if settings is None:
            raise InvalidArgument(
                f"--from-record {str(folder)!r} holds no settings.json, so it is not the report "
                f"of a scmnet hydra run; give the --out directory of an earlier run"
            )
        return cls(folder, settings)

    @property
    def model(self) -> str | None:
        """The model to load: ``None`` for the embedded model, else the recorded directory or
        hub name (a relative path is taken from the current directory; :meth:`check` refuses
        a model other than the recorded one)."""
        name = self.settings.model
        return None if name == EMBEDDED_MODEL and not Path(name).exists() else name

    def ablation(self) -> Ablation:
        """The recorded ablation: kind, patches, seed and noise scale."""
        s = self.settings
        return Ablation(AblationKind(s.ablation), s.patches, s.seed, s.noise_scale)

    def prompts(self) -> PromptSet:
        """The recorded prompts, read again from where they came from.

        Raises
        ------
        InvalidArgument
            If the record does not say where its prompts came from.
        InvalidDataset
            If the prompt file can no longer be read.
        SettingsMismatch
            If the prompts' content changed since the sweep was recorded.
        """
        s = self.settings
        source = s.prompts_source
        if not source and s.prompts == builtin_prompts().name:
            source = BUILTIN_SOURCE  # recorded before settings.json named the source
        if not source:
            raise InvalidArgument(
                f"{self.folder / 'settings.json'} does not say where its prompts "
                f"({s.prompts!r}) came from: they were given to run_hydra as a PromptSet, or "
                f"the file was written by an earlier scmnet; run scmnet hydra with --prompts "
                f"and the recorded settings instead of --from-record"
            )
        if source == BUILTIN_SOURCE:
            found = builtin_prompts()
        else:
            try:
                found = load_prompts(source, name=s.prompts)
            except InvalidDataset as e:
                raise InvalidDataset(
                    f"{self.folder} was recorded with the prompts of {source}, which cannot be "
                    f"read now: {e}"
                ) from e
        if found.content_hash != s.prompts_hash:
            raise SettingsMismatch(
                f"the prompts of {source} have changed since {self.folder} was recorded "
                f"(prompts_hash: {s.prompts_hash!r} there, {found.content_hash!r} now), so a "
                f"re-run would not compute the recorded numbers; restore the file, or run "
                f"scmnet hydra --prompts {source} as a new sweep"
            )
        return found

    def check(self, now: SweepSettings) -> None:
        """Refuse a re-run whose settings -- the loaded model's identity above all -- differ
        from the record's (the package versions and the prompts' path may differ).

        Raises
        ------
        SettingsMismatch
            Naming each difference.
        """
        shown = differences(self.settings, now, _NOT_REPRODUCED)
        if shown:
            raise SettingsMismatch(
                f"{self.folder} cannot be re-run as recorded ({shown}): the model or the "
                f"prompts changed since the sweep was recorded, so the numbers would not be "
                f"its numbers"
            )
