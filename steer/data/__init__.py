"""Public benchmarks for every user: where named sets come from and where they are read.

* :mod:`steer.data.registry`: the pinned upstream files of each named set (commit, URL,
  SHA-256, licence);
* :mod:`steer.data.fetch`: ``steer data fetch``: verified, resumable, atomic downloads
  into the cache (``$STEER_CACHE/data``);
* :mod:`steer.data.locate`: the resolution order ``--data-dir`` / ``$STEER_SHARED_DATA``
  -> ``../shared/data`` -> fetch cache;
* :mod:`steer.data.options`: per-command ``--data-dir`` / ``--fetch`` / column options;

The readers that turn these files into :class:`steer.eval.datasets.EvalItem` rows stay in
:mod:`steer.eval.datasets`.
"""
