"""Keyword-spotting example app: ``python -m examples.keyword_spotting COMMAND`` from the repo root.

Commands: ``listen`` (microphone or ``--wav``), ``evaluate`` (Speech Commands layout),
``false-alarms`` (false accepts per hour on non-keyword audio), ``train`` (the zoo recipe),
``deploy`` (a device folder that runs ``listen``). Only edgeship's public API is used:
:mod:`edgeship.kws`, :mod:`edgeship.audio`, :func:`edgeship.load`, :mod:`edgeship.models`,
:func:`edgeship.targets.deploy.deploy`.
"""
