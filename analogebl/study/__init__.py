"""⑨ Studies: named, tiered training configurations (``studies/*.toml``) and their runner."""

from analogebl.study.config import SCHEMA, TIERS, StudyConfig, load_study, parse_set

__all__ = ["SCHEMA", "TIERS", "StudyConfig", "load_study", "parse_set"]
