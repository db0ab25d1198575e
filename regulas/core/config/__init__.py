"""Configs: YAML loading with groups and overrides (``loader``), typed sections
(``typed``, ``sections``), ``_target_`` resolution (``targets``) and the assembled,
validated study (``study``)."""
