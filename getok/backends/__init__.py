"""Model back ends shared by proposers and decoders: loading SAM / SAM 2 safely, tiny random-weight twins."""
