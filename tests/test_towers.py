"""Memory: a model named by the user is read one tower at a time (image features first, then the text tower)."""

import torch

from hardprompt import load_text_encoder
from hardprompt.apps.common import similarity_objective
from hardprompt.io import load_image
from hardprompt.models.loading import encode_images_once


def test_image_features_from_the_image_tower_alone_equal_the_whole_models(tiny_clip_dir, tiny_clip, images):
    pictures = [load_image(path) for path in images]
    torch.testing.assert_close(
        encode_images_once(str(tiny_clip_dir), pictures, device="cpu"), tiny_clip.encode_images(pictures)
    )


def test_a_text_only_clip_reads_only_the_text_tower_and_encodes_alike(tiny_clip_dir, tiny_clip):
    text_only = load_text_encoder(str(tiny_clip_dir), device="cpu", image_tower=False)
    assert type(text_only.model).__name__ == "CLIPTextModelWithProjection" and not text_only.supports_images
    whole = sum(p.numel() for p in tiny_clip.model.parameters())
    assert sum(p.numel() for p in text_only.model.parameters()) < whole
    texts = ["a red circle", "an oil painting of a lighthouse"]
    torch.testing.assert_close(text_only.encode_texts(texts), tiny_clip.encode_texts(texts))
    ids = tiny_clip.tokenize(texts[1])
    torch.testing.assert_close(text_only.encode_token_ids(ids), tiny_clip.encode_token_ids(ids))


def test_invert_by_name_keeps_only_text_towers_and_the_same_targets(tiny_clip_dir, tiny_clip, images):
    pictures = [load_image(path) for path in images]
    objective, (encoder,) = similarity_objective(
        str(tiny_clip_dir), images=pictures[:2], negatives=[images[2], "a blurry photo"], device="cpu"
    )
    assert not encoder.supports_images
    torch.testing.assert_close(objective.targets, tiny_clip.encode_images(pictures[:2]))
    negatives = torch.cat([tiny_clip.encode_images(pictures[2:]), tiny_clip.encode_texts(["a blurry photo"])])
    torch.testing.assert_close(objective.negatives, negatives)
