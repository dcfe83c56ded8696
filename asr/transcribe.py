"""Transcription: the Python API behind `asr.load_model(...).transcribe(...)`."""

import itertools
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asr import segment
from asr.alignment import Word, align_batch
from asr.audio import SAMPLE_RATE, AudioError, load_audio, resample
from asr.beam_search import DEFAULT_LM_WEIGHT, BeamSearchDecoder, read_word_list
from asr.commands import DEFAULT_REJECTION_THRESHOLD, CommandDecoder
from asr.decoding import greedy_texts
from asr.features import LogMel, valid_mask
from asr.model import AcousticModel
from asr.model_file import feature_settings, load_model_file, model_path
from asr.text import Tokenizer

SILENCE_PEAK = 1e-3  # full scale (-60 dBFS): quieter input is silence and gives no text
SORT_WINDOW = 8  # batches read ahead and sorted by length, so batches carry little padding

AudioInput = str | Path | np.ndarray | torch.Tensor


@dataclass
class Transcription:
    """The result for one input.

    Attributes:
        text: the recognised text ("" when `error` is set or the command was rejected).
        path: the input's path as given, or None for an array, a tensor or an input of an
            unsupported type.
        error: why this input could not be transcribed, or None.
        words: each word with start/end seconds and a confidence in [0, 1].
        confidence: utterance confidence in [0, 1].
        rejected: with a command list, True when no allowed phrase matched well enough.
        command_score: with a command list, the best phrase's rejection score in [0, 1].
    """

    text: str
    path: str | None = None
    error: str | None = None
    words: list[Word] = field(default_factory=list)
    confidence: float = 0.0
    rejected: bool | None = None
    command_score: float | None = None


@dataclass(frozen=True)
class DecodingOptions:
    """How log-probs become text.

    Attributes:
        beam_size: 1 for greedy decoding, more for beam search (torchaudio's flashlight).
        lexicon: word-list file; beam search then only spells these words.
        lm: ARPA n-gram language model file (needs a lexicon).
        lm_weight, word_score: LM weight and per-word insertion bonus for beam search.
        commands: allowed phrases (a sequence of strings, not one string); each utterance
            becomes the most likely phrase or "".
        rejection_threshold: with commands, reject when the phrase's score is below this.

    Raises:
        ValueError: `beam_size` is below 1.
        TypeError: `commands` is a single string.
    """

    beam_size: int = 1
    lexicon: str | None = None
    lm: str | None = None
    lm_weight: float = DEFAULT_LM_WEIGHT
    word_score: float = 0.0
    commands: tuple[str, ...] | None = None
    rejection_threshold: float = DEFAULT_REJECTION_THRESHOLD
    # The folder `lexicon` and `lm` lie in when a Recognizer wrote them from its model file:
    # held here so that they outlive the Recognizer (`dataclasses.replace` carries it over).
    _files: tempfile.TemporaryDirectory | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be at least 1 (1: greedy), got {self.beam_size}")
        if isinstance(self.commands, str):  # would be read as one phrase per letter
            raise TypeError(
                "commands is a sequence of phrases, not one string: give [phrase, ...]; "
                "for a file of one phrase per line, Path(file).read_text().splitlines()"
            )

    @cached_property
    def decoder(self) -> BeamSearchDecoder | CommandDecoder | None:
        """The decoder these options describe (None: greedy); built once, it is costly.

        Raises:
            FileNotFoundError: the lexicon or the LM file does not exist.
        """
        if self.commands:
            return CommandDecoder(list(self.commands), Tokenizer(), self.rejection_threshold)
        # flashlight's own message for a missing LM is KenLM's errno; as in `asr set-decoding`
        for path, what in ((self.lexicon, "lexicon"), (self.lm, "LM")):
            if path and not Path(path).is_file():
                raise FileNotFoundError(f"{path}: no such {what} file")
        if self.beam_size > 1 or self.lexicon or self.lm:
            lexicon = read_word_list(self.lexicon) if self.lexicon else None
            return BeamSearchDecoder(
                Tokenizer(),
                lexicon=lexicon,
                lm_path=self.lm,
                beam_size=self.beam_size,
                lm_weight=self.lm_weight,
                word_score=self.word_score,
            )
        return None


class Recognizer:
    """A loaded model, ready to transcribe audio files or arrays.

    Attributes:
        default_options: how `transcribe` decodes when given no options: the model file's
            own decoding (e.g. lexicon beam search with a language model, see
            `asr.model_file.set_decoding`), else greedy. Its `lexicon` and `lm` are files in
            a temporary folder that lives as long as these options (and the Recognizer) do.
    """

    def __init__(self, model: AcousticModel, tokenizer: Tokenizer, header: dict) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.features = LogMel(**feature_settings(header))
        self.header = header
        self.frame_shift = segment.FRAME_SECONDS * model.config.subsampling  # s per output frame
        self.default_options = self._model_decoding(header.get("decoding"))

    def _model_decoding(self, decoding: dict | None) -> DecodingOptions:
        """Options for the decoding stored in the model file. Flashlight reads the word
        list and the LM from files, so they are written to a folder that lives as long as
        this recogniser."""
        if not decoding:
            return DecodingOptions()
        self._files = tempfile.TemporaryDirectory(prefix="asr-decoding-")
        lexicon = Path(self._files.name) / "words.txt"
        lexicon.write_text("\n".join(decoding["lexicon"]) + "\n", encoding="utf-8")
        lm = None
        if decoding.get("lm_arpa"):
            lm = Path(self._files.name) / "lm.arpa"
            lm.write_text(decoding["lm_arpa"], encoding="utf-8")
        return DecodingOptions(
            beam_size=decoding["beam_size"],
            lexicon=str(lexicon),
            lm=str(lm) if lm else None,
            lm_weight=decoding["lm_weight"],
            word_score=decoding["word_score"],
            _files=self._files,
        )

    @torch.inference_mode()
    def log_probs(self, audio: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the acoustic model on 16 kHz mono arrays.

        Returns:
            log_probs: (B, T, V) CTC log-probabilities; lengths: (B,) valid frames.
        """
        lengths = torch.tensor([len(a) for a in audio], dtype=torch.long)
        batch = torch.zeros(len(audio), int(lengths.max()))
        for i, a in enumerate(audio):
            batch[i, : len(a)] = torch.from_numpy(a)
        feats, frame_lengths = self.features(batch, lengths)
        return self.model(feats, frame_lengths)

    def transcribe(
        self,
        inputs: AudioInput | Sequence[AudioInput],
        batch_size: int = 16,
        options: DecodingOptions | None = None,
        progress: bool = False,
        min_pause: float | None = segment.MIN_PAUSE_SECONDS,
        sample_rate: int = SAMPLE_RATE,
    ) -> list[Transcription]:
        """Transcribe audio files (any format and rate soundfile reads), mono numpy arrays
        or mono float torch tensors.

        Folders are not searched here (`asr.audio.find_audio_files` lists a folder's audio,
        as `asr transcribe` does).

        An input that cannot be used (a file that cannot be read, an array that is not 1-D,
        an object of another type) gives a result with `.error` set (naming the input and
        the reason) and empty text; the other inputs are still transcribed.

        Args:
            inputs: one input (a path, a (num_samples,) array or tensor) or an iterable of
                them (a generator is read to its end first). Arrays and tensors hold samples
                at `sample_rate`, float in [-1, 1].
            options: decoding method (default: `default_options`, the model's own).
            progress: show a progress bar (files, rate, ETA) on stderr.
            min_pause: each input is cut inside its pauses of at least this many seconds
                and the pieces are decoded separately (`asr.segment`), so that a recording
                of several commands gives them all; None or 0: no cuts at pauses. Whatever
                `min_pause`, a stretch longer than `asr.audio.CHUNK_SECONDS` (30 s) is cut
                further at its quietest moments. Not with a command list
                (`options.commands`), whose answer for an input is one allowed phrase or
                nothing.
            sample_rate: the rate of array and tensor inputs, Hz; they are resampled to
                the model's 16 kHz. Files carry their own rate.

        Returns:
            One `Transcription` per input, in input order, with word timings (seconds,
            rounded to the millisecond) and confidences.

        Raises:
            ValueError: `min_pause` is negative, `batch_size` below 1 or `sample_rate` not
                a positive whole number (before any input is read).
            FileNotFoundError: the options' lexicon or LM file does not exist.
        """
        one = str | bytes | Path | np.ndarray | torch.Tensor  # iterable, yet one input each
        if isinstance(inputs, one) or not isinstance(inputs, Iterable):
            inputs = [inputs]
        inputs = list(inputs)  # a generator has no len() and cannot be sliced
        segment.check_min_pause(min_pause)  # before any input is read
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
            raise ValueError(
                f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}"
            )
        options = options or self.default_options
        if options.commands:
            min_pause = None
        results: list[Transcription] = []
        window = batch_size * SORT_WINDOW
        with tqdm(total=len(inputs), unit="file", disable=not progress, file=sys.stderr) as bar:
            for start in range(0, len(inputs), window):
                chunk = inputs[start : start + window]
                results += self._transcribe_window(
                    chunk, batch_size, options, min_pause, int(sample_rate), bar
                )
        return results

    def decode(
        self,
        log_probs: torch.Tensor,
        lengths: torch.Tensor,
        options: DecodingOptions,
        sounding: Sequence[torch.Tensor | None] | None = None,
    ) -> list[Transcription]:
        """Decode (B, T, V) log-probs with (B,) valid frames into B results (no paths).

        Args:
            sounding: B (T_b,) bool masks of the output frames where the audio sounds (or
                Nones): word timings keep letters there (`asr.alignment.align_words`).
        """
        decoder = options.decoder
        results = [Transcription("") for _ in range(len(lengths))]
        if isinstance(decoder, CommandDecoder):
            for result, choice in zip(results, decoder(log_probs, lengths), strict=True):
                result.text, result.rejected = choice.text, choice.rejected
                result.command_score = choice.score
        elif decoder is not None:
            for result, text in zip(results, decoder(log_probs, lengths), strict=True):
                result.text = text
        else:
            for result, text in zip(
                results, greedy_texts(log_probs, lengths, self.tokenizer), strict=True
            ):
                result.text = text
        texts = [r.text for r in results]
        alignments = align_batch(
            log_probs, lengths, texts, self.tokenizer, self.frame_shift, sounding
        )
        for result, alignment in zip(results, alignments, strict=True):
            result.words, result.confidence = alignment.words, alignment.confidence
        return results

    def _transcribe_window(
        self,
        inputs: Sequence[AudioInput],
        batch_size: int,
        options: DecodingOptions,
        min_pause: float | None,
        sample_rate: int,
        bar: tqdm | None = None,
    ) -> list[Transcription]:
        results = [Transcription("", str(x) if isinstance(x, str | Path) else None) for x in inputs]
        pieces, sounds = _cut(inputs, results, min_pause, sample_rate)
        if bar is not None:
            bar.update(sum(r.error is not None for r in results))  # unreadable files are done
        left = Counter(i for i, _, _ in pieces)  # pieces still to decode, per input
        decoded: dict[int, list[tuple[int, int, Transcription]]] = {}
        audible = []
        for p, (i, start, samples) in enumerate(pieces):
            if np.abs(samples).max() >= SILENCE_PEAK:
                audible.append(p)
            else:  # nothing to hear: no model run, so no guess either
                decoded.setdefault(i, []).append((start, len(samples), _silent(options)))
                left[i] -= 1
        if bar is not None:
            bar.update(sum(n == 0 for n in left.values()))  # inputs that were all silence
        order = sorted(audible, key=lambda p: len(pieces[p][2]))
        for batch in _chunks(order, batch_size):
            finished = 0
            batch_results = self._decode_pieces(batch, pieces, sounds, options)
            for p, result in zip(batch, batch_results, strict=True):
                i, start, samples = pieces[p]
                decoded.setdefault(i, []).append((start, len(samples), result))
                left[i] -= 1
                finished += left[i] == 0
            if bar is not None:
                bar.update(finished)
        for i, parts in decoded.items():
            joined = _join(sorted(parts, key=lambda part: part[0]))
            joined.words = snap_words(joined.words, *sounds[i])
            joined.path = results[i].path
            if joined.error is not None:
                joined.error = f"{joined.path or '<array>'}: {joined.error}"
            results[i] = joined
        return results

    def _decode_pieces(
        self,
        batch: list[int],
        pieces: list[tuple[int, int, np.ndarray]],
        sounds: dict[int, tuple[np.ndarray | None, float]],
        options: DecodingOptions,
    ) -> list[Transcription]:
        """One model run over the pieces numbered `batch`; a piece whose outputs are not
        finite gets an error, not a guess, and the others are decoded."""
        log_probs, lengths = self.log_probs([pieces[p][2] for p in batch])
        finite = _finite_outputs(log_probs, lengths)
        if not finite.all():
            log_probs, lengths = log_probs[finite], lengths[finite]
        sounding = [
            self.sounding(sounds[pieces[p][0]][0], pieces[p][1], int(n))
            for p, n in zip(
                itertools.compress(batch, finite.tolist()), lengths.tolist(), strict=True
            )
        ]
        decoded_rows = iter(self.decode(log_probs, lengths, options, sounding))
        return [
            next(decoded_rows) if ok else _not_finite(pieces[p][2])
            for p, ok in zip(batch, finite.tolist(), strict=True)
        ]

    def sounding(self, sound: np.ndarray | None, start: int, frames: int) -> torch.Tensor | None:
        """(frames,) bool: which output frames of a piece starting at sample `start` lie near
        sound, given the input's `asr.segment.sound_frames` (None: unknown)."""
        if sound is None:
            return None
        step = self.model.config.subsampling  # 10 ms sound frames per output frame
        first = start // round(segment.FRAME_SECONDS * SAMPLE_RATE)
        # Output frame j hears feature frames step * j +- (step - 1) through its convolutions;
        # one more output frame each side, as CTC's letters may come a frame early or late.
        j = np.arange(frames)
        low = np.clip(first + step * (j - 2) + 1, 0, len(sound))
        high = np.clip(first + step * (j + 2), 0, len(sound))
        counts = np.concatenate([[0], np.cumsum(sound)])
        return torch.from_numpy(counts[high] - counts[low] > 0)


def _finite_outputs(log_probs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, V) log-probs, (B,) valid frames -> (B,) bool: no NaN or +inf in the valid frames
    (-inf is a probability of 0, which is fine)."""
    valid = valid_mask(lengths, log_probs.shape[1])  # (B, T)
    bad = (torch.isnan(log_probs) | (log_probs == float("inf"))).any(-1) & valid  # (B, T)
    return ~bad.any(-1)


def _not_finite(samples: np.ndarray) -> Transcription:
    """The result for audio the model gives no finite output for. The likely cause, float
    samples so large (about 1e19 and more) that their power spectrum overflows float32,
    is named when the audio is beyond full scale."""
    peak = float(np.abs(samples).max())
    hint = f" (the audio peaks at {peak:.3g}; float audio should lie within [-1, 1])"
    return Transcription("", error="the model's output is not finite" + (hint if peak > 1 else ""))


def _silent(options: DecodingOptions) -> Transcription:
    """The result for audio below SILENCE_PEAK: no words, and no command either."""
    if options.commands:
        return Transcription("", rejected=True, command_score=0.0)
    return Transcription("")


def _join(parts: list[tuple[int, int, Transcription]]) -> Transcription:
    """One result from the (start sample, samples, result) of consecutive pieces of one input."""
    if len(parts) == 1:
        return parts[0][2]
    failed = [part for _, _, part in parts if part.error is not None]
    if failed:  # one piece without a result leaves the whole without one
        return Transcription("", error=failed[0].error)
    words = [
        Word(w.word, w.start + start / SAMPLE_RATE, w.end + start / SAMPLE_RATE, w.confidence)
        for start, _, part in parts
        for w in part.words
    ]
    # The whole's confidence: the pieces' confidences weighted by their lengths.
    confidence = sum(n * part.confidence for _, n, part in parts) / sum(n for _, n, _ in parts)
    result = Transcription(
        " ".join(part.text for _, _, part in parts if part.text),
        words=words,
        confidence=confidence,
    )
    if parts[0][2].rejected is not None:  # a command list: accepted if any piece was
        result.rejected = all(part.rejected for _, _, part in parts)
        result.command_score = max(part.command_score or 0.0 for _, _, part in parts)
    return result


def snap_words(words: list[Word], sound: np.ndarray | None, seconds: float) -> list[Word]:
    """Words whose spans end within the input (output frames are 10-40 ms long, by the
    model's subsampling, so the last one's may end past it) and leave out silence at their
    edges (`asr.segment.snap_to_sound`)."""
    snapped = []
    for w in words:
        start, end = segment.snap_to_sound(min(w.start, seconds), min(w.end, seconds), sound)
        snapped.append(Word(w.word, round(start, 3), round(end, 3), w.confidence))
    return snapped


def _cut(
    inputs: Sequence[AudioInput],
    results: list[Transcription],
    min_pause: float | None,
    sample_rate: int,
) -> tuple[list[tuple[int, int, np.ndarray]], dict[int, tuple[np.ndarray | None, float]]]:
    """Read each input and cut it into the pieces to decode (`asr.segment.pieces`).

    An input that cannot be read gets its error in `results` and no piece.

    Returns:
        The pieces, as (input index, start sample, (samples,) audio), and per readable input
        its sounding frames (`asr.segment.sound_frames`) and its length in seconds.
    """
    pieces: list[tuple[int, int, np.ndarray]] = []
    sounds: dict[int, tuple[np.ndarray | None, float]] = {}
    for i, item in enumerate(inputs):
        try:
            audio = _read(item, sample_rate)
        except AudioError as err:
            results[i].error = str(err)
            continue
        sound = segment.sound_frames(audio)  # for the cuts and for the word times
        sounds[i] = sound, len(audio) / SAMPLE_RATE
        for start, end in segment.pieces(audio, min_pause, sound=sound):
            pieces.append((i, start, audio[start:end]))
    return pieces, sounds


def _read(item: object, sample_rate: int) -> np.ndarray:
    """One input as (num_samples,) float32 at 16 kHz; arrays and tensors are at `sample_rate`.

    Raises:
        AudioError: the input cannot be used (an unreadable file, an array that is not 1-D,
            an object of another type).
    """
    if isinstance(item, str | Path):
        return load_audio(item)
    if isinstance(item, torch.Tensor):
        item = item.detach().to("cpu", torch.float32).numpy()
    if not isinstance(item, np.ndarray):
        raise AudioError(
            "<input>",
            f"unsupported input of type {type(item).__name__}: give a path, a numpy array "
            "or a torch tensor",
        )
    if item.ndim != 1 or item.size == 0:
        raise AudioError("<array>", f"expected a non-empty 1-D array, got shape {item.shape}")
    if not np.isfinite(item).all():
        raise AudioError("<array>", "the audio holds NaN or infinite samples")
    audio = np.ascontiguousarray(item, dtype=np.float32)  # torch takes no negative strides
    return resample(torch.from_numpy(audio), sample_rate).numpy()


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_model(path: str | Path | None = None) -> Recognizer:
    """Load a model file; with no path (or "bundled"), the model bundled with the package.

    Raises:
        FileNotFoundError: the bundled model is asked for and not installed.
        asr.model_file.ModelFileError: the file is not a valid model file.
    """
    model, tokenizer, header = load_model_file(model_path(path))
    return Recognizer(model, tokenizer, header)
