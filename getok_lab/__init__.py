"""getok's experiments, apart from the library: the demo (``getok demo``), the studies (``getok study``) and
the benchmarks (``getok bench``). They use getok's public API only and add their commands to ``getok``
through the ``getok.commands`` entry-point group (setup.cfg)."""
