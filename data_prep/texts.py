"""Sentences for the demo corpus's synthetic speakers, written for this project.

Each language has a handful of sentences of varied rhythm and phonetic content;
:func:`utterance` joins a seeded choice of them with numbers and dates, which every
espeak-ng voice speaks in its own language, so no two utterances are identical.
"""
from __future__ import annotations

import random

SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "The ferry left the harbour an hour late because of the fog.",
        "Please put the blue folder on the shelf beside the window.",
        "Seven thin cats slept quietly under the warm kitchen table.",
        "Would you rather climb the mountain or sail around the island?",
        "Her voice carried across the valley like a bell at dawn.",
        "The recipe calls for two eggs, a cup of flour and a pinch of salt.",
        "Nobody expected the old bridge to survive another winter.",
        "Thick clouds gathered over the hills, and the first drops began to fall.",
        "He measured the room twice before ordering the new carpet.",
        "Jazz musicians often improvise over a simple chord progression.",
        "The library closes early on Sundays, so plan your visit carefully.",
        "A sudden gust of wind scattered the papers across the yard.",
        "Which train goes directly to the airport without changing?",
        "The children laughed as the puppy chased its own shadow.",
        "Fresh bread, strong coffee and a quiet morning: what else could one want?",
        "The engineer checked every valve, every wire and every bolt.",
        "Thousands of starlings swirled above the marsh at sunset.",
        "If the parcel arrives tomorrow, leave it with the neighbour.",
        "She whispered the answer, but everyone in the hall heard it.",
        "The museum's newest exhibit shows tools from the bronze age.",
        "Zebras, giraffes and antelopes shared the shallow water hole.",
        "Turn left at the fountain, then walk straight until the square.",
        "Our quarterly budget review revealed a surprising surplus.",
        "The violin's high notes trembled over the low hum of the cellos.",
        "Why does the moon look larger when it is close to the horizon?",
        "Gentle waves washed over the pebbles with a soft rushing sound.",
        "The committee will publish its findings at the end of June.",
        "Hot soup on a cold evening is a small but certain joy.",
        "Each puzzle piece seemed to fit, yet the picture stayed unclear.",
        "The pilot announced that we would land twenty minutes early.",
    ),
    "de": (
        "Der Zug nach Hamburg fährt heute von Gleis sieben ab.",
        "Im Herbst färben sich die Blätter gelb, rot und braun.",
        "Könnten Sie mir bitte den Weg zum Bahnhof erklären?",
        "Die Kinder spielten bis zum Abend im großen Garten.",
        "Nach dem Regen roch die ganze Stadt nach nassem Stein.",
        "Unser Nachbar repariert sein altes Fahrrad jeden Samstag.",
    ),
    "fr": (
        "Le marché ouvre tôt le matin, bien avant le lever du soleil.",
        "Pourriez-vous fermer la fenêtre, il commence à faire froid?",
        "Les enfants ont construit un château de sable sur la plage.",
        "Mon grand-père racontait toujours la même histoire de pêche.",
        "La bibliothèque municipale est fermée pendant les vacances.",
        "Un vent léger faisait danser les rideaux de la chambre.",
    ),
    "es": (
        "El autobús llega cada quince minutos a la plaza mayor.",
        "¿Sabes dónde dejé las llaves de la casa de campo?",
        "Las montañas se cubrieron de nieve durante la noche.",
        "Mi hermana prepara una tortilla deliciosa los domingos.",
        "El concierto empezó tarde, pero nadie se quejó.",
        "Caminamos junto al río hasta que se hizo de noche.",
    ),
    "it": (
        "La piazza era piena di gente durante la festa del paese.",
        "Vorrei un caffè e una brioche, per favore.",
        "Il treno per Firenze è in ritardo di dieci minuti.",
        "Dopo la pioggia, il cielo si è riempito di colori.",
        "Mia nonna coltiva pomodori e basilico sul balcone.",
    ),
    "nl": (
        "De fietsers reden langs de dijk in de harde wind.",
        "Wil je vanavond met ons naar de bioscoop gaan?",
        "Het oude huis aan de gracht werd prachtig gerestaureerd.",
        "In de winter schaatsen veel mensen op de bevroren sloten.",
        "De bakker opent zijn winkel elke dag om zes uur.",
    ),
    "pt": (
        "O barco partiu cedo, antes de o sol nascer sobre o rio.",
        "Você pode me dizer onde fica a estação de metrô?",
        "As crianças correram pela praia atrás das gaivotas.",
        "A feira de domingo tem frutas frescas e flores coloridas.",
        "Meu avô conta histórias antigas todas as noites.",
    ),
    "pl": (
        "Pociąg do Krakowa odjeżdża za kwadrans.",
        "W lesie rosło mnóstwo grzybów po deszczu.",
        "Czy mogę prosić o szklankę wody z cytryną?",
        "Dzieci budowały bałwana przed szkołą.",
        "Stary zegar na wieży wybił północ.",
    ),
    "sv": (
        "Båten lämnade hamnen tidigt på morgonen.",
        "Kan du hjälpa mig att bära de här lådorna?",
        "På sommaren är nätterna ljusa och långa.",
        "Barnen plockade blåbär i skogen hela dagen.",
        "Det snöade tyst över den lilla byn.",
    ),
}


def utterance(language: str, rng: random.Random) -> str:
    """Two or three sentences of ``language`` and, often, a number or a date."""
    sentences = SENTENCES[language]
    parts = rng.sample(sentences, k=min(len(sentences), rng.choice((2, 2, 3))))
    if rng.random() < 0.5:
        parts.insert(rng.randrange(len(parts) + 1), _numbers(rng))
    return " ".join(parts)


def _numbers(rng: random.Random) -> str:
    choice = rng.randrange(3)
    if choice == 0:
        return f"{rng.randint(2, 9999)}."
    if choice == 1:
        return f"{rng.randint(1, 28)}.{rng.randint(1, 12)}.{rng.randint(1900, 2030)}."
    return f"{rng.randint(10, 99)}, {rng.randint(100, 999)}, {rng.randint(1000, 99999)}."
