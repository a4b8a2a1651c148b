"""The task families of `data synth`: each draws a problem with one right and one plausibly wrong answer, and
checks any answer by code.

A family is `Family(make, check, difficulty)`. `make(rng, pool)` returns a `Problem`: the prompt, the right and
the wrong response (same form, similar length, the wrong one a typical slip), the step-by-step check the gold
rationale shows (`work`), what the check says about each response (`notes`), and the words/numbers it drew
(`operands`). `check(prompt, response)` re-derives the answer from the prompt text alone, so tests (and anyone
wanting a verifiable reward) can confirm a gold label without trusting the generator.

Words and numbers are split into a `train` and a `test` pool by a stable hash (not by seed), so a test split never
shares a word or number with any training split of any seed.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

TEST_SHARE = 4  # one atom in TEST_SHARE goes to the test pool (paper: not stated; synthetic task is ours)

_WORD_TEXT = """
apple arrow anchor angel ankle apron atlas attic autumn avenue
bacon badge banana basket beach beard berry bicycle blanket bottle branch bread brick bridge broom bucket
butter button barrel basin beetle blossom border bubble
cabin camel candle canvas carpet castle cattle cherry circle clock cloud coffee copper cotton crayon crown
candy cereal chair chalk carrot cactus canyon cookie cousin crystal
daisy dancer desert diamond dinner doctor dolphin donkey dragon drawer dream drum duck dust dagger denim dome dune
eagle earth elbow engine eraser evening empire
fabric falcon farmer feather fence field finger flag flower forest fork frog fruit funnel fossil fiddle flute
frost
garden garlic giant ginger glass glove goat grape grass guitar gravel gate goblet gopher galaxy gadget
hammer harbor helmet honey horse hotel house hunter hill habit harvest hazel heron hollow
island iron ivory insect igloo
jacket jelly jewel jungle juice judge
kettle kitten kernel king knife
ladder lagoon lamp lantern lemon letter lizard lobster locket lumber lake leaf lettuce ladle linen lotus
magnet mango marble market meadow melon mirror monkey mountain muffin museum mitten meteor mustard mayor motor
napkin needle nest night noodle novel nugget number
ocean olive onion orange orbit otter oven
paddle palace panda paper parrot peach pencil pepper piano pillow planet pocket potato puzzle pumpkin pebble
pirate plastic powder prism pillar
queen quilt quiver
rabbit radish rainbow record ribbon river rocket rubber ruler raisin raven reef robin rope
saddle salmon sandal school shadow silver spider spoon square statue stone sugar summer sunset sweater salad
saucer scarf shovel signal sister sketch socket spirit
table tablet teacher temple ticket tiger toast tomato tower tractor turtle tunnel thread throne timber towel
trumpet tulip
umbrella uncle unicorn urchin
valley velvet violin village vessel vase
wagon walnut wallet walrus window winter wizard wolf wood worm water wheel whale wheat willow wreath
yacht yogurt yellow yard
zebra zipper
acorn almond amber antler archer bamboo banjo beaver biscuit blender bonnet bottle boulder bracelet buffalo
cabbage camera canoe captain cargo cedar chimney cider cobweb collar comet compass cradle cricket cupboard
dentist dinosaur dragonfly doorbell dresser eggplant elephant emerald envelope feast ferry fireman fishing
flannel folder forehead fridge gallon garnet gazelle glacier goose gorilla granite gutter hamster hedgehog
helper hiker hockey hornet husband iceberg inkwell jaguar jigsaw journey kangaroo ketchup keyboard kingdom
kitchen koala ladybug lantern laptop leopard lighter lily limestone lunchbox mammoth maple meadow mermaid
mineral mosquito moth napkin necklace nephew nickel notebook nutmeg oatmeal octopus orchard ostrich outfit
paintbox pancake panther parcel pasta peanut pelican penguin pepper picnic pigeon pinecone plumber pony
postcard prairie printer pudding puppet quartz rabbit raccoon railway recipe reindeer rhino riddle rooster
sailor sandbox sapphire satchel scissors seagull seashell sheriff shoelace skater sledge slipper snowman
sparrow sponge squirrel stapler starfish suitcase swallow teapot tennis thimble thunder toaster toffee
tornado trolley trophy tuxedo unicycle vacuum vanilla vulture waffle warrior weasel whisker wigwam windmill
wombat woodpecker yoyo
"""
WORDS = sorted({w for w in _WORD_TEXT.split() if 4 <= len(w) <= 8 and w != w[::-1]})
POOLS = ("train", "test")


def pool_of(atom: str) -> str:
    """`test` for about one atom (word or number string) in TEST_SHARE, `train` for the rest; seed-independent."""
    return "test" if int(hashlib.sha256(atom.encode()).hexdigest()[:8], 16) % TEST_SHARE == 0 else "train"


def _by_pool(atoms: list[str]) -> dict[str, list[str]]:
    return {p: [a for a in atoms if pool_of(a) == p] for p in POOLS}


WORD_POOL = _by_pool(WORDS)
INT_POOL = _by_pool([str(i) for i in range(10, 100)])             # two-digit numbers
SMALL_POOL = _by_pool([str(i) for i in range(2, 300)])            # quantities for unit conversion
DEC_POOL = _by_pool([f"{i}.{f}" for i in range(10) for f in [*map(str, range(1, 10)),
                                                             *(f"{j:02d}" for j in range(1, 100) if j % 10)]])


@dataclass
class Problem:
    prompt: str
    right: str
    wrong: str
    work: str                 # the check, step by step, the same whichever side the right response is on
    note_right: str           # "says 0.5, right": follows "Response A " (the per-response rationale)
    note_wrong: str
    operands: list[str]       # the held-out atoms this problem drew
    claim_right: str = ""     # what each response claims, copied into the claim-first rationale's Feedback
    claim_wrong: str = ""
    check_line: str = ""      # the claim-first check: ends in the right claim, so the winner is a string match
    match_right: str = ""     # follows "Response X " after the check ("" = "says <claim_right>")


@dataclass(frozen=True)
class Family:
    make: Callable[[random.Random, str], Problem]   # (rng, pool) -> Problem
    check: Callable[[str, str], bool]               # (prompt, response) -> is the response right?
    difficulty: str                                 # easy (demo default) | hard (headroom) | heldout (adapt)
    what: str


def spell(word: str) -> str:
    """Letters separated by spaces: one token per letter in SmolLM2's tokenizer (hyphens cost two)."""
    return " ".join(word)


def _swap_adjacent(rng: random.Random, s: str) -> str:
    """`s` with one adjacent pair of different characters swapped (a typical transposition slip)."""
    spots = [i for i in range(len(s) - 1) if s[i] != s[i + 1]]
    i = rng.choice(spots)
    return s[:i] + s[i + 1] + s[i] + s[i + 2:]


def _words_in(prompt: str) -> list[str]:
    return re.findall(r"'([^']+)'", prompt)


def _ok(rx: str, text: str) -> re.Match | None:
    return re.fullmatch(rx, text.strip())


# ---------------------------------------------------------------- easy: the check is copying and comparing

def make_decimal(rng: random.Random, pool: str) -> Problem:
    nums = DEC_POOL[pool]
    while True:
        x, y = rng.sample(nums, 2)
        trap = rng.random() < 0.5  # force one 1-place and one 2-place number: the "longer is larger" slip
        if x.split(".")[0] == y.split(".")[0] and (not trap or len(x) != len(y)):
            break
    big, small = (x, y) if Decimal(x) > Decimal(y) else (y, x)
    ask = rng.choice(("larger", "smaller"))
    right, wrong = (big, small) if ask == "larger" else (small, big)
    px, py = (f"{Decimal(v):.2f}" for v in (x, y))  # pad: 0.5 vs 0.45 becomes 0.50 vs 0.45
    steps = []
    for place, a, b in (("tenths", px[-2], py[-2]), ("hundredths", px[-1], py[-1])):
        steps.append(f"{place} {a} {'=' if a == b else '>' if a > b else '<'} {b}")
        if a != b:
            break
    work = f"{px} vs {py}: {', '.join(steps)}, so {right} is {ask}."
    return Problem(f"Which is {ask}: {x} or {y}?", f"{right} is {ask}.", f"{wrong} is {ask}.", work,
                   f"says {right}, right", f"says {wrong}, wrong", [x, y],
                   right, wrong, f"{px} vs {py}: the {ask} is {right}.")


def check_decimal(prompt: str, response: str) -> bool:
    m, r = _ok(r"Which is (larger|smaller): ([\d.]+) or ([\d.]+)\?", prompt), _ok(r"([\d.]+) is (\w+)\.", response)
    if not (m and r) or r.group(2) != m.group(1):
        return False
    pick = max if m.group(1) == "larger" else min
    return Decimal(r.group(1)) == pick(Decimal(m.group(2)), Decimal(m.group(3))) and r.group(1) in m.groups()


def make_reverse(rng: random.Random, pool: str) -> Problem:
    w = rng.choice([w for w in WORD_POOL[pool] if len(w) <= 7])
    right = w[::-1]
    wrong = _swap_adjacent(rng, right)
    work = f"{spell(w)} backwards is {spell(right)}."
    return Problem(f"Write '{w}' backwards.", right, wrong, work, f"writes {right}, right",
                   f"writes {wrong}, wrong", [w], right, wrong, f"{spell(w)} backwards is {spell(right)}: {right}.")


def check_reverse(prompt: str, response: str) -> bool:
    return response.strip() == _words_in(prompt)[0][::-1]


def _order_note(nums: list[int], ascending: bool) -> tuple[str, bool]:
    steps, ok = [], True
    for a, b in pairwise(nums):
        good = a < b if ascending else a > b
        ok &= good
        steps.append(f"{a} {'<' if a < b else '>'} {b}")
    return " ".join([str(nums[0]), *(s.split(" ", 1)[1] for s in steps)]), ok


def _show(nums: list[int]) -> str:
    return ", ".join(map(str, nums))


def make_sort(rng: random.Random, pool: str) -> Problem:
    nums = [int(v) for v in rng.sample(INT_POOL[pool], rng.choice((3, 4)))]
    ascending = rng.random() < 0.5
    right = sorted(nums, reverse=not ascending)
    while nums == right:
        rng.shuffle(nums)
    i = rng.randrange(len(right) - 1)
    wrong = right[:i] + [right[i + 1], right[i]] + right[i + 2:]
    notes = []
    for xs in (right, wrong):
        steps, ok = _order_note(xs, ascending)
        notes.append(f"gives {steps}, {'in order, right' if ok else 'out of order, wrong'}")
    order = "smallest to largest" if ascending else "largest to smallest"
    return Problem(f"Sort from {order}: {_show(nums)}.", _show(right), _show(wrong),
                   f"Each number must be {'smaller' if ascending else 'larger'} than the next.", notes[0], notes[1],
                   [str(v) for v in nums], _show(right), _show(wrong), f"From {order}: {_show(right)}.")


def check_sort(prompt: str, response: str) -> bool:
    m = _ok(r"Sort from (\w+) to \w+: ([\d, ]+)\.", prompt)
    if not m or not _ok(r"[\d, ]+", response):
        return False
    nums = [int(v) for v in m.group(2).split(",")]
    got = [int(v) for v in response.split(",")]
    return got == sorted(nums, reverse=m.group(1) == "largest")


def make_last_letter(rng: random.Random, pool: str) -> Problem:
    w = rng.choice(WORD_POOL[pool])
    wrong = w[-2] if w[-2] != w[-1] else next(c for c in w if c != w[-1])
    work = f"{spell(w)} ends with {w[-1]}."
    return Problem(f"What is the last letter of '{w}'?", f"The last letter is {w[-1]}.",
                   f"The last letter is {wrong}.", work, f"says {w[-1]}, right", f"says {wrong}, wrong", [w],
                   w[-1], wrong, f"{spell(w)}: the last letter is {w[-1]}.")


def check_last_letter(prompt: str, response: str) -> bool:
    r = _ok(r"The last letter is ([a-z])\.", response)
    return bool(r) and r.group(1) == _words_in(prompt)[0][-1]


def make_upper(rng: random.Random, pool: str) -> Problem:
    w = rng.choice(WORD_POOL[pool])
    right = w.upper()
    if rng.random() < 0.5:
        i = rng.randrange(1, len(w))
        wrong, slip = right[:i] + w[i] + right[i + 1:], f"{w[i]} not capital"
    else:
        wrong, slip = _swap_adjacent(rng, right), "letters swapped"
    work = f"{spell(w)} in capitals is {spell(right)}."
    return Problem(f"Write '{w}' in capital letters.", right, wrong, work, f"writes {right}, right",
                   f"writes {wrong}, {slip}, wrong", [w], right, wrong, f"'{w}' in capitals is {right}.")


def check_upper(prompt: str, response: str) -> bool:
    return response.strip() == _words_in(prompt)[0].upper()


def _count_note(words: list[str], letter: str, k: int) -> str:
    listed = ", ".join(f"{i} {w}" for i, w in enumerate(words, 1))
    off = [w for w in words if not w.startswith(letter)]
    if off:
        return f"lists {listed}, but {off[0]} does not start with {letter}, wrong"
    if len(words) != k:
        return f"lists {listed}: {len(words)}, not {k}, wrong"
    return f"lists {listed}: {k} with {letter}, right"


def make_word_count(rng: random.Random, pool: str) -> Problem:
    by_letter: dict[str, list[str]] = {}
    for w in WORD_POOL[pool]:
        by_letter.setdefault(w[0], []).append(w)
    k = rng.choice([k for k in (2, 3, 4) if any(len(ws) > k for ws in by_letter.values())])
    letter = rng.choice(sorted(c for c, ws in by_letter.items() if len(ws) > k))
    right = rng.sample(by_letter[letter], k)
    slip = rng.choice(("more", "fewer", "letter"))
    if slip == "more":
        wrong = rng.sample(by_letter[letter], k + 1)
    elif slip == "fewer":
        wrong = rng.sample(by_letter[letter], k - 1)
    else:
        wrong = rng.sample(by_letter[letter], k)
        other = rng.choice([w for w in WORD_POOL[pool] if w[0] != letter])
        wrong[rng.randrange(1, k)] = other
    work = f"Exactly {k} words are needed, each starting with {letter}."
    return Problem(f"List exactly {k} words that start with '{letter}'.", ", ".join(right), ", ".join(wrong), work,
                   _count_note(right, letter, k), _count_note(wrong, letter, k), sorted(set(right + wrong)),
                   ", ".join(right), ", ".join(wrong), work, f"lists {k}, all with {letter}")


def check_word_count(prompt: str, response: str) -> bool:
    m = _ok(r"List exactly (\d) words that start with '([a-z])'\.", prompt)
    words = [w.strip() for w in response.strip().rstrip(".").split(",")]
    return bool(m) and len(words) == int(m.group(1)) and all(re.fullmatch(r"[a-z]+", w) and
                                                             w.startswith(m.group(2)) for w in words)


# ---------------------------------------------------------------- hard: arithmetic and counting (see docs/synth.md)

def make_add(rng: random.Random, pool: str) -> Problem:
    a, b = (int(v) for v in rng.choices(INT_POOL[pool], k=2))
    s, ones = a + b, a % 10 + b % 10
    carry = ones >= 10
    slips = [v for v in (s - 10, s + 10, s - 1, s + 1) if len(str(v)) == len(str(s))]  # same length: no tell
    wrong = s - 10 if carry and s - 10 in slips and rng.random() < 0.5 else rng.choice(slips)  # s - 10: forgot carry
    tens = a // 10 + b // 10 + carry
    work = (f"Ones {a % 10} + {b % 10} = {ones}" + (", carry 1" if carry else "") +
            f"; tens {a // 10} + {b // 10}" + (" + 1" if carry else "") + f" = {tens}; so {s}.")
    return Problem(f"What is {a} + {b}?", f"{a} + {b} = {s}.", f"{a} + {b} = {wrong}.", work,
                   f"says {s}, right", f"says {wrong}, wrong", [str(a), str(b)], str(s), str(wrong), work)


def check_add(prompt: str, response: str) -> bool:
    m, r = _ok(r"What is (\d+) \+ (\d+)\?", prompt), _ok(r"(\d+) \+ (\d+) = (\d+)\.", response)
    return bool(m and r) and int(r.group(3)) == int(m.group(1)) + int(m.group(2))


def make_count_letter(rng: random.Random, pool: str) -> Problem:
    w = rng.choice(WORD_POOL[pool])
    repeated = [c for c in sorted(set(w)) if w.count(c) > 1]
    c = rng.choice(repeated if repeated and rng.random() < 0.6 else sorted(set(w)))
    n = w.count(c)
    wrong = n + rng.choice((-1, 1)) if n > 1 else n + 1
    at = ", ".join(str(i) for i, x in enumerate(w, 1) if x == c)
    work = f"{spell(w)} has {c} at position{'s' * (n > 1)} {at}: {n} in all."
    return Problem(f"How many times does '{c}' appear in '{w}'?", f"The count is {n}.",
                   f"The count is {wrong}.", work, f"says {n}, right", f"says {wrong}, wrong", [w],
                   str(n), str(wrong), work)


def check_count_letter(prompt: str, response: str) -> bool:
    c, w = _words_in(prompt)[:2]
    r = _ok(r"The count is (\d+)\.", response)
    return bool(r) and int(r.group(1)) == w.count(c)


def make_word_length(rng: random.Random, pool: str) -> Problem:
    w = rng.choice(WORD_POOL[pool])
    wrong = len(w) + rng.choice((-1, 1))
    work = ", ".join(f"{i} {c}" for i, c in enumerate(w, 1)) + f": {len(w)} letters."
    return Problem(f"How many letters are in '{w}'?", f"It has {len(w)} letters.", f"It has {wrong} letters.",
                   work, f"says {len(w)}, right", f"says {wrong}, wrong", [w], str(len(w)), str(wrong), work)


def check_word_length(prompt: str, response: str) -> bool:
    r = _ok(r"It has (\d+) letters\.", response)
    return bool(r) and int(r.group(1)) == len(_words_in(prompt)[0])


# ---------------------------------------------------------------- heldout: new task kinds for `adapt`

UNITS = (("kilometers", "meters", 1000), ("meters", "centimeters", 100), ("centimeters", "millimeters", 10),
         ("kilograms", "grams", 1000), ("liters", "milliliters", 1000))


def make_units(rng: random.Random, pool: str) -> Problem:
    big, small, f = rng.choice(UNITS)
    v = int(rng.choice(SMALL_POOL[pool]))
    right = v * f
    wrong = right * 10 if rng.random() < 0.5 else right // 10  # one zero too many or too few: wrong factor
    work = f"1 {big[:-1]} = {f} {small}, so {v} × {f} = {right}."
    return Problem(f"How many {small} are in {v} {big}?", f"{v} {big} is {right} {small}.",
                   f"{v} {big} is {wrong} {small}.", work, f"says {right}, right", f"says {wrong}, wrong", [str(v)],
                   str(right), str(wrong), work)


def check_units(prompt: str, response: str) -> bool:
    m = _ok(r"How many (\w+) are in (\d+) (\w+)\?", prompt)
    r = _ok(r"(\d+) (\w+) is (\d+) (\w+)\.", response)
    if not (m and r):
        return False
    factor = {(b, s): f for b, s, f in UNITS}.get((m.group(3), m.group(1)))
    return factor is not None and r.group(2, 4) == (m.group(3), m.group(1)) and \
        int(r.group(1)) == int(m.group(2)) and int(r.group(3)) == int(m.group(2)) * factor


def make_alphabetical(rng: random.Random, pool: str) -> Problem:
    words = WORD_POOL[pool]
    x = rng.choice(words)
    same = [w for w in words if w[0] == x[0] and w != x]
    y = rng.choice(same if same and rng.random() < 0.7 else [w for w in words if w != x])
    first, last = sorted((x, y))
    ask = rng.choice(("first", "last"))
    right, wrong = (first, last) if ask == "first" else (last, first)
    steps = []
    for a, b in zip(x, y):
        steps.append(f"{a} {'=' if a == b else '<' if a < b else '>'} {b}")
        if a != b:
            break
    else:
        steps.append(f"{min(x, y, key=len)} ends first")
    work = f"{x} vs {y}: {', '.join(steps)}, so {right} comes {ask}."
    return Problem(f"Which word comes {ask} in alphabetical order: '{x}' or '{y}'?", f"{right} comes {ask}.",
                   f"{wrong} comes {ask}.", work, f"says {right}, right", f"says {wrong}, wrong", [x, y],
                   right, wrong, work)


def check_alphabetical(prompt: str, response: str) -> bool:
    m = _ok(r"Which word comes (first|last) in alphabetical order: '([a-z]+)' or '([a-z]+)'\?", prompt)
    r = _ok(r"([a-z]+) comes (first|last)\.", response)
    if not (m and r) or r.group(2) != m.group(1):
        return False
    pick = min if m.group(1) == "first" else max
    return r.group(1) == pick(m.group(2), m.group(3))


FAMILIES: dict[str, Family] = {
    "decimal_compare": Family(make_decimal, check_decimal, "easy", "which of two decimals is larger/smaller"),
    "reverse_word": Family(make_reverse, check_reverse, "easy", "write a word backwards"),
    "sort_numbers": Family(make_sort, check_sort, "easy", "sort 3-4 numbers; is each list in order?"),
    "last_letter": Family(make_last_letter, check_last_letter, "easy", "the last letter of a word"),
    "uppercase": Family(make_upper, check_upper, "easy", "write a word in capital letters"),
    "word_count": Family(make_word_count, check_word_count, "easy", "list exactly k words starting with a letter"),
    "add_2digit": Family(make_add, check_add, "hard", "add two 2-digit numbers"),
    "count_letter": Family(make_count_letter, check_count_letter, "hard", "how often a letter occurs in a word"),
    "word_length": Family(make_word_length, check_word_length, "hard", "how many letters a word has"),
    "unit_convert": Family(make_units, check_units, "heldout", "convert metric units (x10/x100/x1000)"),
    "alphabetical": Family(make_alphabetical, check_alphabetical, "heldout", "which of two words comes first/last"),
}
DIFFICULTIES = ("easy", "hard", "heldout")
