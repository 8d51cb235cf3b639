"""A neural audio codec toolkit: encoder -> residual VQ -> unbounded decoder."""
from codec.config import ModelConfig, model_config
from codec.model import Codec, CodecOutput

__version__ = "0.1.0"
__all__ = ["Codec", "CodecOutput", "ModelConfig", "model_config", "__version__"]
