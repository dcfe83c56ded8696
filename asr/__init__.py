"""asr: spoken-command recognition with a bidirectional LSTM trained with CTC.

>>> import asr
>>> model = asr.load_model()            # the bundled model, or load_model("model.safetensors")
>>> model.transcribe(["a.wav", "b.flac"])[0].text
"""

from asr.transcribe import DecodingOptions, Recognizer, Transcription, load_model

__version__ = "0.1.0"
__all__ = ["DecodingOptions", "Recognizer", "Transcription", "__version__", "load_model"]
