import pytest
import torch

from hardprompt import load_text_encoder
from hardprompt.errors import HardpromptError


@pytest.mark.parametrize("text", ["a photo of a cat", "", "an oil painting of a lighthouse in a storm, dramatic"])
def test_clip_short_encoding_equals_full_77_token_forward(tiny_clip, text):
    """Encoding only BOS + prompt + EOS gives CLIP's own text features (causal, pooled at EOS)."""
    ours = tiny_clip.encode_token_ids(tiny_clip.tokenize(text))
    reference = tiny_clip.encode_texts([text])
    padded = tiny_clip.tokenizer([text], padding="max_length", max_length=77, return_tensors="pt")
    full = tiny_clip.model.get_text_features(**padded)
    full = torch.nn.functional.normalize(getattr(full, "pooler_output", full), dim=-1)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours, full, atol=1e-5, rtol=0)


def test_clip_image_features_are_unit_vectors(tiny_clip, images):
    from hardprompt.io import load_image

    features = tiny_clip.encode_images([load_image(p) for p in images])
    assert features.shape == (3, 32)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(3))


def test_minilm_embedding_path_matches_text_path_and_means_something(minilm):
    text = "a cat sleeps on a warm windowsill"
    torch.testing.assert_close(
        minilm.encode_token_ids(minilm.tokenize(text)), minilm.encode_texts([text]), atol=1e-5, rtol=0
    )
    features = minilm.encode_texts([text, "a kitten naps in the sun by the window", "quarterly stock market report"])
    assert features[0] @ features[1] > features[0] @ features[2] + 0.3


def test_minilm_has_no_image_encoder(minilm):
    assert not minilm.supports_images
    with pytest.raises(HardpromptError, match="no image encoder"):
        minilm.encode_images([])


def test_missing_local_model_and_offline_hub_model_are_one_line_errors():
    with pytest.raises(HardpromptError, match="model directory not found"):
        load_text_encoder("./no/such/model", device="cpu")
    with pytest.raises(HardpromptError, match="not available offline") as error:
        load_text_encoder("nobody/no-such-clip-model", device="cpu")
    assert "\n" not in str(error.value) and "nobody/no-such-clip-model" in str(error.value)


def test_cuda_request_without_gpu_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(HardpromptError, match="no CUDA GPU"):
        load_text_encoder("minilm", device="cuda")
