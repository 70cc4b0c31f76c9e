"""The format core, importable without TensorFlow: how an RLDS episode is stored.

- :mod:`~rlds_hub.format.specs`: dm_env specs as JSON, spec differences, inferred specs.
- :mod:`~rlds_hub.format.features`: the feature description (``features.json``) derived
  from specs, exactly as TFDS writes it.
- :mod:`~rlds_hub.format.plan`: ``features.json`` compiled into one :class:`Leaf` per
  serialized key — the single vocabulary the encoder and the decoder share.
- :mod:`~rlds_hub.format.encode`: whole episodes to ``tf.train.Example`` bytes.
- :mod:`~rlds_hub.format.decode`: the one decoder, ``tf.train.Example`` bytes to NumPy.
- :mod:`~rlds_hub.format.images`: PNG / JPEG frames, decoded pixel for pixel as TFDS does.
"""

from rlds_hub.format.decode import NUM_STEPS, EpisodeDecoder, ParseError
from rlds_hub.format.encode import ExampleEncoder, Pieces
from rlds_hub.format.features import IMAGE_ENCODINGS, ImageEncoding, episode_features
from rlds_hub.format.plan import Leaf, Plan, PlanError, flatten, unflatten
from rlds_hub.format.specs import SpecError, spec_differences, spec_from_json, spec_to_json

__all__ = [
    "IMAGE_ENCODINGS",
    "NUM_STEPS",
    "EpisodeDecoder",
    "ExampleEncoder",
    "ImageEncoding",
    "Leaf",
    "ParseError",
    "Pieces",
    "Plan",
    "PlanError",
    "SpecError",
    "episode_features",
    "flatten",
    "spec_differences",
    "spec_from_json",
    "spec_to_json",
    "unflatten",
]
