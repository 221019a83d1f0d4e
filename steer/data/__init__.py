"""The data layer: every reader that turns a data set into :class:`~steer.data.items.EvalItem` rows,
and where the public sets come from.  Calibration, probes, TGA and evaluation all import it;
it imports none of them (nor :mod:`steer.eval`), and its own modules import one another
without a circle (``tests/test_import_graph.py`` checks both).

Items and readers:

* :mod:`steer.data.specs`: what one ``--data`` entry (``NAME[:SPLIT][@IMAGE_MODE]``, ``hf:...``,
  ``PATH``) means: :func:`~steer.data.specs.load_items`, the reader every command goes through;
* :mod:`steer.data.items`: :class:`~steer.data.items.EvalItem` and the label rules;
* :mod:`steer.data.named_sets`: the named public benchmarks (``figstep``, ``advbench`` ...,
  ``organism``): :func:`~steer.data.named_sets.load_dataset_by_name`;
* :mod:`steer.data.organism_sets`: the shipped model organism's splits, images rendered to a cache;
* :mod:`steer.data.user_files`: a user's ``.jsonl`` / ``.csv`` / ``.json`` / ``.parquet`` file or
  dataset folder: :func:`~steer.data.user_files.load_user_dataset`;
* :mod:`steer.data.user_rows`: one row in the user column format -> item (shared by user files
  and hub datasets);
* :mod:`steer.data.hub`: ``hf:ORG/NAME`` Hugging Face datasets.

Where the public sets come from:

* :mod:`steer.data.registry`: the pinned upstream files of each named set (commit, URL,
  SHA-256, licence);
* :mod:`steer.data.fetch`: ``steer data fetch``: verified, resumable, atomic downloads
  into the cache (``$STEER_CACHE/data``);
* :mod:`steer.data.locate`: the resolution order ``--data-dir`` / ``$STEER_SHARED_DATA``
  -> ``../shared/data`` -> fetch cache;
* :mod:`steer.data.integrity`: SHA-256 checks of a copy against its manifest;
* :mod:`steer.data.options`: per-command ``--data-dir`` / ``--fetch`` / column options.

The package imports nothing on its own: import the module you need.
"""
