"""Model back ends shared by proposers and decoders: loading SAM / SAM 2 / SAM 3 safely, tiny random-weight
twins, and one engine per SAM generation (:class:`~getok.backends.sam.SamEngine`,
:class:`~getok.backends.sam2.Sam2Engine`, :class:`~getok.backends.sam3.Sam3Engine`; :mod:`getok.backends._engine`)
that embeds images and answers prompts for both the grid proposers and the mask decoders."""
