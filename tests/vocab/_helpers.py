"""Small helpers shared by the vocab tests."""

from __future__ import annotations


def weights(model):
    """Clones of ``(input embedding, output head)`` weights (the head is the embedding when tied)."""
    e = model.get_input_embeddings().weight.detach().clone()
    h = model.get_output_embeddings().weight.detach().clone()
    return e, h


def logits(model, processor, text="Find the dog <g8_r1_c2> now."):
    import torch

    x = processor.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        return model(**x).logits
