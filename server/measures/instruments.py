"""The published PHQ-9 and GAD-7: items, answer options, scores and bands. Pure.

Both instruments were developed by Drs. Robert L. Spitzer, Janet B.W. Williams, Kurt Kroenke and
colleagues, with an educational grant from Pfizer Inc.; no permission is required to reproduce,
translate, display or distribute them (ATTRIBUTION, shown beside every form). The items and
options are the published English wording, in the published order. PHQ-9's tenth, unscored
question (how difficult the problems have made things) is not asked: nothing here uses it.

Scores are the sum of the item values (0-3 each). Bands: PHQ-9 0-4 minimal, 5-9 mild, 10-14
moderate, 15-19 moderately severe, 20-27 severe; GAD-7 0-4 minimal, 5-9 mild, 10-14 moderate,
15-21 severe (Kroenke et al. 2001; Spitzer et al. 2006). LOINC codes are carried for the
records other systems read (FHIR Observation and QuestionnaireResponse).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ATTRIBUTION = ("PHQ-9 and GAD-7: developed by Drs. Robert L. Spitzer, Janet B.W. Williams, Kurt Kroenke and "
               "colleagues, with an educational grant from Pfizer Inc. No permission required to reproduce, "
               "translate, display or distribute.")


@dataclass(frozen=True)
class Option:
    value: int
    label: str
    loinc: str  # the LOINC answer code


@dataclass(frozen=True)
class Item:
    id: str  # the published item number, as a string ("1".."9")
    text: str
    loinc: str


@dataclass(frozen=True)
class Band:
    low: int
    high: int
    name: str


@dataclass(frozen=True)
class Instrument:
    name: str  # "PHQ-9" | "GAD-7", as the contract names it
    title: str
    question: str  # the stem every item answers
    items: tuple[Item, ...]
    bands: tuple[Band, ...]
    loinc_panel: str
    loinc_total: str

    @property
    def max_score(self) -> int:
        return 3 * len(self.items)

    def band(self, score: int) -> str:
        for band in self.bands:
            if band.low <= score <= band.high:
                return band.name
        raise ValueError(f"{self.name} scores are 0-{self.max_score}, not {score}")

    def frame_items(self) -> list[dict[str, Any]]:
        """The items as the `questionnaire` frame carries them."""
        return [{"id": item.id, "text": item.text,
                 "options": [{"value": o.value, "label": o.label} for o in OPTIONS]} for item in self.items]


OPTIONS = (
    Option(0, "Not at all", "LA6568-5"),
    Option(1, "Several days", "LA6569-3"),
    Option(2, "More than half the days", "LA6570-1"),
    Option(3, "Nearly every day", "LA6571-9"),
)

PHQ9 = Instrument(
    name="PHQ-9",
    title="Patient Health Questionnaire (PHQ-9)",
    question="Over the last 2 weeks, how often have you been bothered by any of the following problems?",
    items=(
        Item("1", "Little interest or pleasure in doing things", "44250-9"),
        Item("2", "Feeling down, depressed, or hopeless", "44255-8"),
        Item("3", "Trouble falling or staying asleep, or sleeping too much", "44259-0"),
        Item("4", "Feeling tired or having little energy", "44254-1"),
        Item("5", "Poor appetite or overeating", "44251-7"),
        Item("6", "Feeling bad about yourself — or that you are a failure or have let yourself or your family "
                  "down", "44258-2"),
        Item("7", "Trouble concentrating on things, such as reading the newspaper or watching television",
             "44252-5"),
        Item("8", "Moving or speaking so slowly that other people could have noticed? Or the opposite — being so "
                  "fidgety or restless that you have been moving around a lot more than usual", "44253-3"),
        Item("9", "Thoughts that you would be better off dead or of hurting yourself in some way", "44260-8"),
    ),
    bands=(Band(0, 4, "minimal"), Band(5, 9, "mild"), Band(10, 14, "moderate"),
           Band(15, 19, "moderately severe"), Band(20, 27, "severe")),
    loinc_panel="44249-1",
    loinc_total="44261-6",
)

GAD7 = Instrument(
    name="GAD-7",
    title="Generalized Anxiety Disorder (GAD-7)",
    question="Over the last 2 weeks, how often have you been bothered by the following problems?",
    items=(
        Item("1", "Feeling nervous, anxious, or on edge", "69725-0"),
        Item("2", "Not being able to stop or control worrying", "68509-9"),
        Item("3", "Worrying too much about different things", "69733-4"),
        Item("4", "Trouble relaxing", "69734-2"),
        Item("5", "Being so restless that it is hard to sit still", "69735-9"),
        Item("6", "Becoming easily annoyed or irritable", "69689-8"),
        Item("7", "Feeling afraid, as if something awful might happen", "69736-7"),
    ),
    bands=(Band(0, 4, "minimal"), Band(5, 9, "mild"), Band(10, 14, "moderate"), Band(15, 21, "severe")),
    loinc_panel="69737-5",
    loinc_total="70274-6",
)

INSTRUMENTS: dict[str, Instrument] = {PHQ9.name: PHQ9, GAD7.name: GAD7}
SAFETY_ITEM = (PHQ9.name, "9")  # thoughts of being better off dead or of self-harm


class BadAnswers(ValueError):
    """Answers that are missing, unknown or out of range; the message names the item."""


def checked_answers(instrument: Instrument, answers: Any) -> dict[str, int]:
    """Every item answered once with a value 0-3, nothing else; in the instrument's order."""
    if not isinstance(answers, Mapping):
        raise BadAnswers("answers: an object of item id -> value")
    unknown = sorted(set(answers) - {item.id for item in instrument.items})
    if unknown:
        raise BadAnswers(f"answers: {instrument.name} has no item {unknown[0][:20]!r}")
    out: dict[str, int] = {}
    for item in instrument.items:
        value = answers.get(item.id)
        if value is None:
            raise BadAnswers(f"answers: item {item.id} is not answered")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 3:
            raise BadAnswers(f"answers: item {item.id} takes a value 0-3")
        out[item.id] = value
    return out


def score(instrument: Instrument, answers: Mapping[str, int]) -> int:
    return sum(answers[item.id] for item in instrument.items)


def raises_alert(instrument: Instrument, answers: Mapping[str, int]) -> bool:
    name, item = SAFETY_ITEM
    return instrument.name == name and answers.get(item, 0) > 0
