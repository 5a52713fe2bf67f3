"""A tiny Qwen-style tokenizer: byte-level BPE trained offline on a fixed corpus, with Qwen's special tokens.

The BPE is trained with the `tokenizers` library using exactly the normalizer, pre-tokenizer and decoder that
transformers' ``Qwen2Tokenizer`` (Qwen3) and ``Qwen3_5Tokenizer`` (Qwen3.5) rebuild when they load a folder, so the
saved ``tokenizer.json`` and what ``AutoTokenizer`` reconstructs from it tokenize identically. The 26 added tokens
follow Qwen3's list and order (placed after the BPE vocabulary, as in Qwen): ``<|endoftext|>`` is the pad token,
``<|im_end|>`` the eos token; like Qwen3, ``<think>``/``</think>`` (and the tool tokens) are added but not
"special", so ``decode(..., skip_special_tokens=True)`` keeps them, which the answer format relies on.

The corpus is generated from a fixed seed that does not depend on the build seed: every build gets the same
tokenizer.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

# Qwen3's added tokens, in Qwen's order (ids follow the BPE vocabulary). True = special (skipped when decoding
# with skip_special_tokens=True), as in Qwen3's tokenizer_config.json.
QWEN_ADDED_TOKENS: list[tuple[str, bool]] = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
]

PAD_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"
# Total vocabulary (BPE + added tokens); a multiple of 64, and equal to the models' vocab_size.
TARGET_VOCAB = 2048

# The two pre-tokenizer regexes of transformers 5.x: Qwen2Tokenizer (Qwen2/2.5/3, Qwen3-VL) and Qwen3_5Tokenizer.
QWEN2_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""  # noqa: E501
QWEN3_5_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""  # noqa: E501
REGEX_BY_CLASS = {"Qwen2Tokenizer": QWEN2_REGEX, "Qwen3_5Tokenizer": QWEN3_5_REGEX}

# ChatML with Qwen3's thinking switch. Content may be a string or a list of parts ({"type": "text"|"image"|
# "video", ...}), as multimodal processors pass it; images/videos render as Qwen's vision placeholders, which the
# processor then expands to one <|image_pad|> per visual token. ``enable_thinking=false`` pre-fills an empty think
# block after the generation prompt, like Qwen3; an assistant ``reasoning_content`` is rendered in a think block.
CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- elif content is iterable and content is not mapping -%}"
    "{%- for part in content -%}"
    "{%- if part is string -%}{{- part -}}"
    "{%- elif part.type == 'image' or 'image' in part or 'image_url' in part -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part.type == 'video' or 'video' in part -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in part -%}{{- part.text -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- elif content is not none -%}{{- content | string -}}"
    "{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message.role + '\\n' -}}"
    "{%- if message.role == 'assistant' and message.reasoning_content is defined"
    " and message.reasoning_content is string and message.reasoning_content -%}"
    "{{- '<think>\\n' + message.reasoning_content.strip('\\n') + '\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{{- render(message.content) -}}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
)

_WORDS = """
the be to of and a in that have it for not on with he as you do at this but his by from they we say her she or
an will my one all would there their what so up out if about who get which go me when make can like time no just
him know take people into year your good some could them see other than then now look only come its over think
also back after use two how our work first well way even new want because any these give day most us is are was
were has had been being count number numbers circle circles square squares triangle triangles shape shapes image
images picture digit digits drawn shown read answer answers question questions final step steps think thinking
reason reasoning solve solution problem problems compute result sum difference product total plus minus times
equals equal left right top bottom red green blue yellow black white color colors small large big many few each
every how many what which where is there are in the image please give put inside box boxed tags then first second
third last next before after add subtract multiply divide twice half double more less fewer same different true
false yes no correct wrong check again carefully let us we get so therefore hence thus because since value values
user assistant system message messages response responses teacher student policy reward rewards model models
about above across act action actually add address after again against age ago agree air all allow almost alone
along already although always among amount analysis animal another answer anyone anything appear apply approach
area argue arm around arrive art article artist ask assume attack attention audience author available avoid away
baby bad bag ball bank bar base beat beautiful become bed begin behavior behind believe benefit best better between
beyond bill billion bit blood board body book born both break bring brother budget build building business buy
call camera campaign cancer candidate capital car card care career carry case catch cause cell center central
century certain certainly chair challenge chance change character charge check child choice choose church citizen
city civil claim class clear clearly close coach cold collection college come commercial common community company
compare computer concern condition conference consider consumer contain continue control cost could country
couple course court cover create crime cultural culture cup current customer cut dark data daughter dead deal
death debate decade decide decision deep defense degree democrat describe design despite detail determine develop
die different difficult dinner direction director discover discuss discussion disease doctor dog door down draw
dream drive drop drug during early east easy eat economic economy edge education effect effort eight either
election else employee end energy enjoy enough enter entire environment especially establish evening event ever
evidence exactly example executive exist expect experience expert explain eye face fact factor fail fall family
far fast father fear federal feel feeling field fight figure fill film finally financial find fine finger finish
fire firm fish five floor fly focus follow food foot force foreign forget form former forward four free friend
front full fund future game garden gas general generation girl glass goal government great ground group grow
growth guess gun guy hair hand hang happen happy hard head health hear heart heat heavy help here herself high
himself history hit hold home hope hospital hot hotel hour house however huge human hundred husband idea identify
imagine impact important improve include including increase indeed indicate individual industry information
institution interest interesting international interview investment involve issue item itself job join keep
key kid kill kind kitchen knowledge land language late later laugh law lawyer lay lead leader learn least leave
legal letter level lie life light likely line list listen little live local long lose loss lot love low machine
magazine main maintain major majority manage management manager market marriage material matter maybe mean
measure media medical meet meeting member memory mention method middle might military million mind minute miss
mission modern moment money month morning mother mouth move movement movie much music must myself name nation
national natural nature near nearly necessary need network never news newspaper nice night none nor north note
nothing notice occur offer office officer official often oil old once open operation opportunity option order
organization others outside own owner page pain painting paper parent part participant particular particularly
partner party pass past patient pattern pay peace perform performance perhaps period person personal phone
physical pick piece place plan plant play player point police political politics poor popular population
position positive possible power practice prepare present president pressure pretty prevent price private
probably process produce professional professor program project property protect prove provide public pull
purpose push quality quickly quite race radio raise range rate rather reach ready real reality realize really
receive recent recently recognize record reduce reflect region relate relationship religious remain remember
remove report represent require research resource respond rest return reveal rich rise risk road rock role room
rule run safe save scene school science scientist score sea season seat section security seek seem sell send
senior sense series serious serve service set seven several shake share shoot short shot should shoulder show
side sign significant similar simple simply since sing single sister sit site situation six size skill skin
social society soldier some somebody someone something sometimes son song soon sort sound source south southern
space speak special specific speech spend sport spring staff stage stand standard star start state statement
station stay still stock stop store story strategy street strong structure study stuff style subject success
successful such suddenly suffer suggest summer support sure surface table talk task tax teach technology
television tell ten tend term test than thank themselves theory thing those though thought thousand threat three
through throughout throw today together tonight too tough toward town trade traditional training travel treat
treatment tree trial trip trouble truth try turn type under understand unit until upon usually various very
victim view violence visit voice vote wait walk wall war watch water weapon wear week weight west western whatever
while whole whom whose why wide wife win wind window wish within without woman wonder word worker world worry
write writer young yourself zero
""".split()

_ARITH_WORDS = ["What is", "Compute", "Calculate", "How much is", "Find the value of"]


def _corpus(seed: int = 1234) -> list[str]:
    """Fixed training corpus: arithmetic, the data sets' question templates, the answer format, common English."""
    from recipe.zppo.algo.answer_format import ANSWER_CLOSER

    from .datasets import ARITH_TEMPLATES, VL_TEMPLATES

    rng = random.Random(seed)
    lines: list[str] = []
    for _ in range(3000):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        op = rng.choice(["+", "-", "*"])
        val = {"+": a + b, "-": a - b, "*": a * b}[op]
        tmpl = rng.choice(ARITH_TEMPLATES)
        lines.append(tmpl.format(a=a, b=b, op=op) + "\n\n" + ANSWER_CLOSER)
        lines.append(f"<think>{a}{op}{b}={val}</think> \\boxed{{{val}}}")
        lines.append(f"<think>\nWe compute {a} {op} {b} = {val}.\n</think>\n\nThe answer is \\boxed{{{val}}}.")
    for tmpl in VL_TEMPLATES.values():
        for _ in range(200):
            lines.append("<image>" + tmpl + "\n\n" + ANSWER_CLOSER)
    for _ in range(3000):
        n = rng.randint(4, 14)
        sent = " ".join(rng.choice(_WORDS) for _ in range(n))
        lines.append(sent[0].upper() + sent[1:] + rng.choice([".", "?", "!", ","]))
    for _ in range(500):
        lines.append(f"{rng.choice(_ARITH_WORDS)} {rng.randint(0, 999)} {rng.choice('+-*/')} {rng.randint(0, 999)}?")
    return lines


def train_bpe(tokenizer_class: str = "Qwen2Tokenizer", vocab_size: int = TARGET_VOCAB) -> Tokenizer:
    """Train the byte-level BPE (deterministic) and add Qwen's tokens after it."""
    regex = REGEX_BY_CLASS[tokenizer_class]
    tok = Tokenizer(
        models.BPE(
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    n_added = len(QWEN_ADDED_TOKENS)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - n_added,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    corpus = _corpus()
    # The added tokens are not in the corpus: strip them so BPE does not learn pieces of "<think>" etc.
    cleaned = []
    for line in corpus:
        for t, _ in QWEN_ADDED_TOKENS:
            line = line.replace(t, " ")
        cleaned.append(line.replace("<image>", " "))
    tok.train_from_iterator(cleaned, trainer=trainer, length=len(cleaned))
    bpe_size = tok.get_vocab_size()
    tok.add_tokens([AddedToken(t, special=s, normalized=False) for t, s in QWEN_ADDED_TOKENS])
    # Pad the vocabulary to the target with reserved tokens if the corpus gave fewer merges (keeps ids stable).
    missing = vocab_size - tok.get_vocab_size(with_added_tokens=True)
    if missing > 0:
        tok.add_special_tokens([AddedToken(f"<|reserved_{i}|>", special=True) for i in range(missing)])
    assert tok.get_vocab_size(with_added_tokens=True) == vocab_size, (bpe_size, tok.get_vocab_size())
    return tok


def save_hf_tokenizer(out_dir: Path, tokenizer_class: str = "Qwen2Tokenizer", model_max_length: int = 4096):
    """Train and save a Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json, chat template).

    Returns the loaded transformers tokenizer.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = train_bpe(tokenizer_class)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=None,
        bos_token=None,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out_dir))
    # Declare Qwen's tokenizer class (what AutoTokenizer instantiates, rebuilding the same pre-tokenizer).
    clean_tokenizer_config(out_dir, tokenizer_class=tokenizer_class, errors="replace", add_prefix_space=False)
    return AutoTokenizer.from_pretrained(str(out_dir))


# Loading-time keys that transformers writes back when a loaded tokenizer is saved again (e.g. by a processor).
_LOAD_TIME_KEYS = ("is_local", "local_files_only", "merges_file", "vocab_file", "tokenizer_file", "name_or_path")


def clean_tokenizer_config(out_dir: Path, **updates) -> None:
    """Drop load-time keys from tokenizer_config.json, apply ``updates``, rewrite it with sorted keys."""
    from ._common import write_json

    cfg_path = Path(out_dir) / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    for k in _LOAD_TIME_KEYS:
        cfg.pop(k, None)
    cfg.update(updates)
    write_json(cfg_path, cfg)
