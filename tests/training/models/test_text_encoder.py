import numpy as np
import pytest

from training.models.text_encoder import EMBED_DIM, encode_texts, l2_normalise, load_text_encoder


class FakeEncoder:
    """Unnormalised 384-d vectors from text length; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, sentences, **kwargs):
        self.calls += 1
        out = np.zeros((len(sentences), EMBED_DIM), dtype=np.float64)
        for i, s in enumerate(sentences):
            out[i, 0], out[i, 1] = len(s), 1.0
        return out


def test_l2_normalise_by_hand():
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_encode_texts_normalises_and_caches(tmp_path):
    fake = FakeEncoder()
    first = encode_texts(["ab", "abcd"], cache_path=tmp_path, model=fake, show_progress=False)
    assert first.shape == (2, EMBED_DIM) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0)
    again = encode_texts(["ab", "abcd"], cache_path=tmp_path, model=fake, show_progress=False)
    assert fake.calls == 1 and np.array_equal(first, again)
    encode_texts(["abcd", "ab"], cache_path=tmp_path, model=fake, show_progress=False)  # new key
    assert fake.calls == 2 and len(list(tmp_path.glob("minilm_*.npy"))) == 2


def test_encode_no_texts():
    assert encode_texts([], model=FakeEncoder()).shape == (0, EMBED_DIM)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_real_minilm_puts_similar_texts_closer(tmp_path):
    model = load_text_encoder(tmp_path / "models")
    texts = [
        "Toy Story (1995) Animation, Children's, Comedy",
        "Toy Story 2 (1999) Animation, Children's, Comedy",
        "Schindler's List (1993) Drama, War",
    ]
    emb = encode_texts(texts, cache_path=tmp_path / "emb", model=model, show_progress=False)
    assert emb.shape == (3, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2
