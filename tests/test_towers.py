"""Memory: a model named by the user is read one tower at a time (image features first, then the text tower)."""

import pytest
import torch
from transformers import CLIPImageProcessorPil

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


def streamed(location):
    from hardprompt.models.clip import _tower_config, streamed_vision_tower

    return streamed_vision_tower(
        str(location), _tower_config(str(location), "vision"), torch.device("cpu"), torch.float32
    )


def test_the_image_tower_runs_block_by_block_from_disk_and_keeps_no_block(tiny_clip_dir, tiny_clip, images):
    from hardprompt.models.clip import image_features

    pictures = [load_image(path) for path in images]
    vision = streamed(tiny_clip_dir)
    layers = vision.vision_model.encoder.layers
    assert all(p.is_meta for p in layers.parameters()) and all(p.is_meta for p in vision.visual_projection.parameters())
    seen = []
    layers[0].register_forward_pre_hook(lambda module, _inputs: seen.append(next(module.parameters()).is_meta))
    features = image_features(vision, tiny_clip.image_processor, pictures, torch.device("cpu"))
    assert seen == [False]  # the block held real weights while it ran
    assert all(p.is_meta for p in layers.parameters())  # and dropped them after
    torch.testing.assert_close(features, tiny_clip.encode_images(pictures), rtol=0, atol=1e-6)
    again = image_features(vision, tiny_clip.image_processor, pictures, torch.device("cpu"))
    torch.testing.assert_close(again, features, rtol=0, atol=0)


def test_a_sharded_checkpoint_streams_and_other_formats_load_whole(tiny_clip_dir, tiny_clip, images, tmp_path):
    from transformers import CLIPModel

    pictures = [load_image(path) for path in images]
    model = CLIPModel.from_pretrained(tiny_clip_dir)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    assert streamed(tmp_path / "sharded") is not None
    (tmp_path / "bin").mkdir()
    model.config.save_pretrained(tmp_path / "bin")
    torch.save(model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    assert streamed(tmp_path / "bin") is None
    for folder in ("sharded", "bin"):
        for name in ("preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
            (tmp_path / folder / name).write_bytes((tiny_clip_dir / name).read_bytes())
        torch.testing.assert_close(
            encode_images_once(str(tmp_path / folder), pictures, device="cpu"), tiny_clip.encode_images(pictures)
        )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_towers_read_block_by_block_cast_as_transformers_casts(tiny_clip_dir, images, dtype):
    from transformers import CLIPTextModelWithProjection, CLIPVisionModelWithProjection

    from hardprompt.models.clip import _tower_config, image_features, streamed_vision_tower, text_tower_from_blocks

    location, cpu = str(tiny_clip_dir), torch.device("cpu")
    text_config = _tower_config(location, "text")
    ours = text_tower_from_blocks(location, text_config, cpu, dtype)
    theirs = CLIPTextModelWithProjection.from_pretrained(location, config=text_config, dtype=dtype)
    assert {p.dtype for p in ours.parameters()} == {dtype}
    for (name, mine), (_, reference) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
        torch.testing.assert_close(mine, reference, rtol=0, atol=0, msg=name)
    ids = torch.tensor([[49406, 320, 1929, 49407]])
    torch.testing.assert_close(ours.eval()(ids).text_embeds, theirs.eval()(ids).text_embeds, rtol=0, atol=0)
    vision_config = _tower_config(location, "vision")
    processor = CLIPImageProcessorPil.from_pretrained(location)
    pictures = [load_image(path) for path in images]
    whole = CLIPVisionModelWithProjection.from_pretrained(location, config=vision_config, dtype=dtype).eval()
    streamed_features = image_features(
        streamed_vision_tower(location, vision_config, cpu, dtype), processor, pictures, cpu
    )
    torch.testing.assert_close(streamed_features, image_features(whole, processor, pictures, cpu), rtol=0, atol=0)
