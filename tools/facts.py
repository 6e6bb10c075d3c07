"""A fact table written into the project: questions a program can check, and fabricated
entities that have no true answer.

Families (``families()``): ``capitals`` (countries), ``state_capitals`` (U.S. states),
``chemical_symbols``, ``book_authors``, ``event_years``. Each :class:`Fact` carries its
subject, a question, a statement (the true sentence), the answer and aliases that also
count as right. :func:`fabricated` gives invented subjects (countries, states, elements,
books, events) with the same question/statement shapes and ``answer=None``.

Use it like this::

    from gnothi.tools import facts
    for fam in facts.families():
        for f in facts.FACTS[fam]:
            f.question          # "What is the capital of France?"
            f.statement         # "The capital of France is Paris."
            f.false_statement() # same frame with another fact's answer (deterministic)
            f.check("Paris is the capital.")   # True: the answer names Paris
    facts.fabricated("capitals")[0].question   # "What is the capital of Veltoria?"
    facts.is_refusal("I don't know.")          # True: declines to answer

Every real fact was checked by hand. Where a place has more than one accepted capital
(Bolivia, South Africa) all of them are aliases. Checking (:meth:`Fact.check`) looks at
the first sentence of an answer: names and titles match as whole words, ignoring case
and accents; chemical symbols match case-sensitively as whole symbols; years must be the
first year the answer names.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from dataclasses import dataclass, field

__all__ = ["Fact", "FACTS", "FABRICATED", "families", "fabricated", "all_facts", "by_subject", "strip_accents", "is_refusal"]


@dataclass(frozen=True)
class Fact:
    family: str
    subject: str
    question: str
    statement: str  # the true statement (for fabricated facts: a frame with "{answer}")
    answer: str | None  # None: fabricated, no true answer
    aliases: tuple[str, ...] = field(default=())
    frame: str = ""  # statement with "{answer}" in place of the answer

    @property
    def fabricated(self) -> bool:
        return self.answer is None

    @property
    def key(self) -> str:
        """A stable id: ``family/subject``."""
        return f"{self.family}/{self.subject}"

    def answers(self) -> tuple[str, ...]:
        return () if self.answer is None else (self.answer, *self.aliases)

    def with_answer(self, answer: str) -> str:
        """The statement frame filled with ``answer`` (true or not)."""
        return self.frame.format(answer=answer)

    def false_statement(self, salt: int = 0) -> str:
        """The same frame with a different answer from the same family (deterministic)."""
        pool = [f.answer for f in FACTS[self.family] if f.answer and f.answer not in self.answers()]
        i = (zlib.crc32(self.key.encode()) + 7919 * salt) % len(pool)
        return self.with_answer(pool[i])

    def check(self, text: str) -> bool:
        """Whether ``text`` (a model's answer) gives this fact's answer. Always False for
        fabricated facts (they have none)."""
        if self.answer is None or not text:
            return False
        first = first_sentence(text)
        if self.family == "event_years":
            years = re.findall(r"(?<!\d)(\d{3,4})(?!\d)", first)
            return bool(years) and years[0] == self.answer
        if self.family == "chemical_symbols":
            for a in self.answers():
                if re.search(rf"(?<=[^A-Za-z]){re.escape(a)}(?![a-z])", first):
                    return True
            return False
        norm = strip_accents(first).lower()
        for a in self.answers():
            a = strip_accents(a).lower()
            if re.search(rf"(?<![a-z]){re.escape(a)}(?![a-z])", norm):
                return True
        return False


def strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def first_sentence(text: str, max_chars: int = 200) -> str:
    """Text up to the first sentence end (a period not inside initials/abbreviations)."""
    t = text.strip()[:max_chars]
    m = re.search(r"(?<![A-Z])(?<!\b[A-Z][a-z])(?<!St)(?<!Dr|Mr)[.!?](\s|$)|\n", t)
    return t[: m.start() + 1] if m else t


_REFUSAL = re.compile(
    r"\b(i (do not|don't|cannot|can't) (know|find|answer|provide)|i'm not (sure|aware)|i am not (sure|aware)|"
    r"not aware of|no (such|information|record|known|real)|does not exist|doesn't exist|(is|are) not a real|"
    r"not a (real|recognized|known)|there is no|unknown to me|couldn't find|could not find)\b",
    re.I,
)


def is_refusal(text: str) -> bool:
    """Whether an answer declines or says the subject is not real. ("A fictional work by
    ..." is not a refusal: the model goes on to make up an author.)"""
    return bool(_REFUSAL.search(text or ""))


# ============================================================================ tables
# (subject, answer, aliases...)

_CAPITALS: list[tuple[str, ...]] = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Portugal", "Lisbon"), ("the United Kingdom", "London"), ("Ireland", "Dublin"),
    ("the Netherlands", "Amsterdam"), ("Belgium", "Brussels"), ("Switzerland", "Bern", "Berne"),
    ("Austria", "Vienna", "Wien"), ("Poland", "Warsaw"), ("the Czech Republic", "Prague"),
    ("Slovakia", "Bratislava"), ("Hungary", "Budapest"), ("Romania", "Bucharest"), ("Bulgaria", "Sofia"),
    ("Greece", "Athens"), ("Turkey", "Ankara"), ("Russia", "Moscow"), ("Ukraine", "Kyiv", "Kiev"),
    ("Belarus", "Minsk"), ("Lithuania", "Vilnius"), ("Latvia", "Riga"), ("Estonia", "Tallinn"),
    ("Finland", "Helsinki"), ("Sweden", "Stockholm"), ("Norway", "Oslo"), ("Denmark", "Copenhagen"),
    ("Iceland", "Reykjavik"), ("Croatia", "Zagreb"), ("Serbia", "Belgrade"), ("Slovenia", "Ljubljana"),
    ("Albania", "Tirana"), ("North Macedonia", "Skopje"), ("Bosnia and Herzegovina", "Sarajevo"),
    ("Montenegro", "Podgorica"), ("Moldova", "Chisinau"), ("Cyprus", "Nicosia"), ("Malta", "Valletta"),
    ("Egypt", "Cairo"), ("Morocco", "Rabat"), ("Algeria", "Algiers"), ("Tunisia", "Tunis"),
    ("Libya", "Tripoli"), ("Sudan", "Khartoum"), ("Ethiopia", "Addis Ababa"), ("Kenya", "Nairobi"),
    ("Uganda", "Kampala"), ("Tanzania", "Dodoma"), ("Nigeria", "Abuja"), ("Ghana", "Accra"),
    ("Senegal", "Dakar"), ("Mali", "Bamako"), ("Niger", "Niamey"), ("Chad", "N'Djamena", "Ndjamena"),
    ("Cameroon", "Yaounde"), ("Angola", "Luanda"), ("Zambia", "Lusaka"), ("Zimbabwe", "Harare"),
    ("Mozambique", "Maputo"), ("Madagascar", "Antananarivo"),
    ("South Africa", "Pretoria", "Cape Town", "Bloemfontein"), ("Namibia", "Windhoek"),
    ("Botswana", "Gaborone"), ("Rwanda", "Kigali"), ("Somalia", "Mogadishu"),
    ("the Democratic Republic of the Congo", "Kinshasa"), ("China", "Beijing", "Peking"),
    ("Japan", "Tokyo"), ("South Korea", "Seoul"), ("North Korea", "Pyongyang"),
    ("India", "New Delhi"), ("Pakistan", "Islamabad"), ("Bangladesh", "Dhaka"), ("Nepal", "Kathmandu"),
    ("Afghanistan", "Kabul"), ("Iran", "Tehran", "Teheran"), ("Iraq", "Baghdad"), ("Syria", "Damascus"),
    ("Lebanon", "Beirut"), ("Jordan", "Amman"), ("Saudi Arabia", "Riyadh"), ("Yemen", "Sanaa", "Sana'a"),
    ("Oman", "Muscat"), ("the United Arab Emirates", "Abu Dhabi"), ("Qatar", "Doha"),
    ("Kuwait", "Kuwait City"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("Cambodia", "Phnom Penh"),
    ("Laos", "Vientiane"), ("Myanmar", "Naypyidaw", "Nay Pyi Taw", "Naypyitaw"),
    ("Malaysia", "Kuala Lumpur"), ("Indonesia", "Jakarta"), ("the Philippines", "Manila"),
    ("Mongolia", "Ulaanbaatar", "Ulan Bator"), ("Kazakhstan", "Astana", "Nur-Sultan"),
    ("Uzbekistan", "Tashkent"), ("Kyrgyzstan", "Bishkek"), ("Tajikistan", "Dushanbe"),
    ("Turkmenistan", "Ashgabat"), ("Azerbaijan", "Baku"), ("Armenia", "Yerevan"),
    ("the United States", "Washington", "Washington, D.C."), ("Canada", "Ottawa"),
    ("Mexico", "Mexico City"), ("Guatemala", "Guatemala City"), ("Cuba", "Havana"), ("Jamaica", "Kingston"),
    ("Haiti", "Port-au-Prince"), ("the Dominican Republic", "Santo Domingo"), ("Honduras", "Tegucigalpa"),
    ("Nicaragua", "Managua"), ("Costa Rica", "San Jose"), ("Panama", "Panama City"),
    ("El Salvador", "San Salvador"), ("Colombia", "Bogota"), ("Venezuela", "Caracas"), ("Ecuador", "Quito"),
    ("Peru", "Lima"), ("Bolivia", "Sucre", "La Paz"), ("Chile", "Santiago"), ("Argentina", "Buenos Aires"),
    ("Uruguay", "Montevideo"), ("Paraguay", "Asuncion"), ("Brazil", "Brasilia"), ("Australia", "Canberra"),
    ("New Zealand", "Wellington"), ("Papua New Guinea", "Port Moresby"), ("Fiji", "Suva"),
]

_STATE_CAPITALS: list[tuple[str, ...]] = [
    ("California", "Sacramento"), ("Texas", "Austin"), ("New York", "Albany"), ("Florida", "Tallahassee"),
    ("Illinois", "Springfield"), ("Pennsylvania", "Harrisburg"), ("Ohio", "Columbus"), ("Michigan", "Lansing"),
    ("Georgia", "Atlanta"), ("Washington", "Olympia"), ("Massachusetts", "Boston"), ("Arizona", "Phoenix"),
    ("Colorado", "Denver"), ("Oregon", "Salem"), ("Nevada", "Carson City"), ("Utah", "Salt Lake City"),
    ("Minnesota", "Saint Paul", "St. Paul", "St Paul"), ("Wisconsin", "Madison"), ("Missouri", "Jefferson City"),
    ("Tennessee", "Nashville"), ("Louisiana", "Baton Rouge"), ("Kentucky", "Frankfort"), ("Virginia", "Richmond"),
    ("North Carolina", "Raleigh"), ("South Carolina", "Columbia"), ("Alabama", "Montgomery"),
    ("Mississippi", "Jackson"), ("Arkansas", "Little Rock"), ("Oklahoma", "Oklahoma City"), ("Kansas", "Topeka"),
    ("Nebraska", "Lincoln"), ("Iowa", "Des Moines"), ("Indiana", "Indianapolis"), ("New Jersey", "Trenton"),
    ("Maryland", "Annapolis"), ("Connecticut", "Hartford"), ("Maine", "Augusta"), ("Vermont", "Montpelier"),
    ("New Hampshire", "Concord"), ("Rhode Island", "Providence"), ("Delaware", "Dover"),
    ("West Virginia", "Charleston"), ("Hawaii", "Honolulu"), ("Alaska", "Juneau"), ("Idaho", "Boise"),
    ("Montana", "Helena"), ("Wyoming", "Cheyenne"), ("North Dakota", "Bismarck"), ("South Dakota", "Pierre"),
    ("New Mexico", "Santa Fe"),
]

_SYMBOLS: list[tuple[str, ...]] = [
    ("hydrogen", "H"), ("helium", "He"), ("lithium", "Li"), ("beryllium", "Be"), ("boron", "B"),
    ("carbon", "C"), ("nitrogen", "N"), ("oxygen", "O"), ("fluorine", "F"), ("neon", "Ne"),
    ("sodium", "Na"), ("magnesium", "Mg"), ("aluminium", "Al"), ("silicon", "Si"), ("phosphorus", "P"),
    ("sulfur", "S"), ("chlorine", "Cl"), ("argon", "Ar"), ("potassium", "K"), ("calcium", "Ca"),
    ("scandium", "Sc"), ("titanium", "Ti"), ("vanadium", "V"), ("chromium", "Cr"), ("manganese", "Mn"),
    ("iron", "Fe"), ("cobalt", "Co"), ("nickel", "Ni"), ("copper", "Cu"), ("zinc", "Zn"),
    ("gallium", "Ga"), ("germanium", "Ge"), ("arsenic", "As"), ("selenium", "Se"), ("bromine", "Br"),
    ("krypton", "Kr"), ("rubidium", "Rb"), ("strontium", "Sr"), ("yttrium", "Y"), ("zirconium", "Zr"),
    ("niobium", "Nb"), ("molybdenum", "Mo"), ("technetium", "Tc"), ("ruthenium", "Ru"), ("rhodium", "Rh"),
    ("palladium", "Pd"), ("silver", "Ag"), ("cadmium", "Cd"), ("indium", "In"), ("tin", "Sn"),
    ("antimony", "Sb"), ("tellurium", "Te"), ("iodine", "I"), ("xenon", "Xe"), ("caesium", "Cs"),
    ("barium", "Ba"), ("lanthanum", "La"), ("cerium", "Ce"), ("neodymium", "Nd"), ("europium", "Eu"),
    ("gadolinium", "Gd"), ("hafnium", "Hf"), ("tantalum", "Ta"), ("tungsten", "W"), ("osmium", "Os"),
    ("iridium", "Ir"), ("platinum", "Pt"), ("gold", "Au"), ("mercury", "Hg"), ("thallium", "Tl"),
    ("lead", "Pb"), ("bismuth", "Bi"), ("polonium", "Po"), ("radon", "Rn"), ("francium", "Fr"),
    ("radium", "Ra"), ("thorium", "Th"), ("uranium", "U"), ("plutonium", "Pu"), ("americium", "Am"),
    ("curium", "Cm"), ("einsteinium", "Es"), ("nobelium", "No"),
]

_BOOKS: list[tuple[str, ...]] = [
    ("Pride and Prejudice", "Jane Austen", "Austen"), ("Sense and Sensibility", "Jane Austen", "Austen"),
    ("Nineteen Eighty-Four", "George Orwell", "Orwell"), ("Animal Farm", "George Orwell", "Orwell"),
    ("Hamlet", "William Shakespeare", "Shakespeare"), ("Romeo and Juliet", "William Shakespeare", "Shakespeare"),
    ("Macbeth", "William Shakespeare", "Shakespeare"), ("War and Peace", "Leo Tolstoy", "Tolstoy"),
    ("Anna Karenina", "Leo Tolstoy", "Tolstoy"),
    ("Crime and Punishment", "Fyodor Dostoevsky", "Dostoevsky", "Dostoyevsky"),
    ("The Brothers Karamazov", "Fyodor Dostoevsky", "Dostoevsky", "Dostoyevsky"),
    ("Moby-Dick", "Herman Melville", "Melville"), ("The Great Gatsby", "F. Scott Fitzgerald", "Fitzgerald"),
    ("To Kill a Mockingbird", "Harper Lee"), ("The Catcher in the Rye", "J. D. Salinger", "Salinger"),
    ("Don Quixote", "Miguel de Cervantes", "Cervantes"), ("The Odyssey", "Homer"), ("The Iliad", "Homer"),
    ("The Divine Comedy", "Dante Alighieri", "Dante"), ("Frankenstein", "Mary Shelley", "Shelley"),
    ("Dracula", "Bram Stoker", "Stoker"), ("Great Expectations", "Charles Dickens", "Dickens"),
    ("Oliver Twist", "Charles Dickens", "Dickens"), ("A Tale of Two Cities", "Charles Dickens", "Dickens"),
    ("David Copperfield", "Charles Dickens", "Dickens"), ("Jane Eyre", "Charlotte Bronte", "Charlotte Brontë"),
    ("Wuthering Heights", "Emily Bronte", "Emily Brontë"),
    ("The Adventures of Tom Sawyer", "Mark Twain", "Twain", "Samuel Clemens"),
    ("Adventures of Huckleberry Finn", "Mark Twain", "Twain", "Samuel Clemens"),
    ("The Old Man and the Sea", "Ernest Hemingway", "Hemingway"),
    ("A Farewell to Arms", "Ernest Hemingway", "Hemingway"),
    ("One Hundred Years of Solitude", "Gabriel Garcia Marquez", "Garcia Marquez", "Marquez"),
    ("Les Miserables", "Victor Hugo", "Hugo"), ("The Hunchback of Notre-Dame", "Victor Hugo", "Hugo"),
    ("The Count of Monte Cristo", "Alexandre Dumas", "Dumas"), ("The Three Musketeers", "Alexandre Dumas", "Dumas"),
    ("Madame Bovary", "Gustave Flaubert", "Flaubert"), ("Ulysses", "James Joyce", "Joyce"),
    ("The Hobbit", "J. R. R. Tolkien", "Tolkien"), ("The Lord of the Rings", "J. R. R. Tolkien", "Tolkien"),
    ("Harry Potter and the Philosopher's Stone", "J. K. Rowling", "Rowling"),
    ("Brave New World", "Aldous Huxley", "Huxley"), ("Lord of the Flies", "William Golding", "Golding"),
    ("Fahrenheit 451", "Ray Bradbury", "Bradbury"), ("The Grapes of Wrath", "John Steinbeck", "Steinbeck"),
    ("Of Mice and Men", "John Steinbeck", "Steinbeck"), ("On the Origin of Species", "Charles Darwin", "Darwin"),
    ("The Communist Manifesto", "Karl Marx", "Marx", "Engels"), ("The Republic", "Plato"),
    ("Robinson Crusoe", "Daniel Defoe", "Defoe"), ("Gulliver's Travels", "Jonathan Swift", "Swift"),
    ("Alice's Adventures in Wonderland", "Lewis Carroll", "Carroll"),
    ("The Picture of Dorian Gray", "Oscar Wilde", "Wilde"), ("The Time Machine", "H. G. Wells", "Wells"),
    ("The War of the Worlds", "H. G. Wells", "Wells"), ("Treasure Island", "Robert Louis Stevenson", "Stevenson"),
    ("Little Women", "Louisa May Alcott", "Alcott"), ("Uncle Tom's Cabin", "Harriet Beecher Stowe", "Stowe"),
    ("The Scarlet Letter", "Nathaniel Hawthorne", "Hawthorne"), ("Heart of Darkness", "Joseph Conrad", "Conrad"),
    ("Mrs Dalloway", "Virginia Woolf", "Woolf"), ("The Metamorphosis", "Franz Kafka", "Kafka"),
    ("The Trial", "Franz Kafka", "Kafka"), ("Faust", "Johann Wolfgang von Goethe", "Goethe"),
    ("The Little Prince", "Antoine de Saint-Exupery", "Saint-Exupery"), ("Lolita", "Vladimir Nabokov", "Nabokov"),
    ("Catch-22", "Joseph Heller", "Heller"), ("Slaughterhouse-Five", "Kurt Vonnegut", "Vonnegut"),
    ("Beloved", "Toni Morrison", "Morrison"), ("The Handmaid's Tale", "Margaret Atwood", "Atwood"),
    ("A Brief History of Time", "Stephen Hawking", "Hawking"), ("The Art of War", "Sun Tzu", "Sunzi"),
    ("The Prince", "Niccolo Machiavelli", "Machiavelli"), ("Leviathan", "Thomas Hobbes", "Hobbes"),
    ("The Wealth of Nations", "Adam Smith"), ("The Canterbury Tales", "Geoffrey Chaucer", "Chaucer"),
    ("Paradise Lost", "John Milton", "Milton"), ("The Jungle Book", "Rudyard Kipling", "Kipling"),
    ("Peter Pan", "J. M. Barrie", "Barrie"), ("Charlie and the Chocolate Factory", "Roald Dahl", "Dahl"),
    ("The Lion, the Witch and the Wardrobe", "C. S. Lewis", "C.S. Lewis"),
    ("Twenty Thousand Leagues Under the Seas", "Jules Verne", "Verne"),
    ("Around the World in Eighty Days", "Jules Verne", "Verne"), ("The Da Vinci Code", "Dan Brown"),
    ("The Shining", "Stephen King"), ("Gone with the Wind", "Margaret Mitchell", "Mitchell"),
    ("The Call of the Wild", "Jack London"), ("Anne of Green Gables", "L. M. Montgomery", "Montgomery"),
    ("Things Fall Apart", "Chinua Achebe", "Achebe"), ("The Stranger", "Albert Camus", "Camus"),
    ("Candide", "Voltaire"), ("Walden", "Henry David Thoreau", "Thoreau"), ("Leaves of Grass", "Walt Whitman", "Whitman"),
]

# (event as a noun phrase, year)
_EVENTS = [
    ("the start of World War I", "1914"), ("the end of World War I", "1918"),
    ("the start of World War II", "1939"), ("the end of World War II", "1945"),
    ("the Apollo 11 Moon landing", "1969"), ("the fall of the Berlin Wall", "1989"),
    ("the signing of the United States Declaration of Independence", "1776"),
    ("the storming of the Bastille", "1789"), ("Columbus's first voyage to the Americas", "1492"),
    ("the Battle of Hastings", "1066"), ("the sealing of the Magna Carta", "1215"),
    ("the sinking of the Titanic", "1912"), ("the assassination of John F. Kennedy", "1963"),
    ("the September 11 attacks", "2001"), ("the dissolution of the Soviet Union", "1991"),
    ("the attack on Pearl Harbor", "1941"), ("the D-Day landings in Normandy", "1944"),
    ("the atomic bombing of Hiroshima", "1945"), ("the October Revolution in Russia", "1917"),
    ("the start of the American Civil War", "1861"), ("the end of the American Civil War", "1865"),
    ("the assassination of Abraham Lincoln", "1865"), ("the Battle of Waterloo", "1815"),
    ("Martin Luther's Ninety-five Theses", "1517"), ("the Wright brothers' first powered flight", "1903"),
    ("the launch of Sputnik 1", "1957"), ("Yuri Gagarin's first human spaceflight", "1961"),
    ("the Chernobyl disaster", "1986"), ("the Great Fire of London", "1666"),
    ("Nelson Mandela's release from prison", "1990"), ("Nelson Mandela's election as president of South Africa", "1994"),
    ("the introduction of euro banknotes and coins", "2002"), ("India's independence from Britain", "1947"),
    ("the founding of the People's Republic of China", "1949"), ("the start of the Korean War", "1950"),
    ("the Cuban Missile Crisis", "1962"), ("the Wall Street Crash", "1929"),
    ("the signing of the Treaty of Versailles", "1919"), ("the Battle of Gettysburg", "1863"),
    ("the defeat of the Spanish Armada", "1588"), ("the signing of the United States Constitution", "1787"),
    ("Queen Victoria's accession to the throne", "1837"), ("the coronation of Queen Elizabeth II", "1953"),
    ("the publication of On the Origin of Species", "1859"), ("the fall of Constantinople", "1453"),
    ("the release of the first iPhone", "2007"), ("the reunification of Germany", "1990"),
    ("Hurricane Katrina", "2005"), ("the Boston Tea Party", "1773"), ("the Louisiana Purchase", "1803"),
    ("the Battle of Trafalgar", "1805"), ("Napoleon's coronation as emperor", "1804"),
    ("the opening of the Panama Canal", "1914"), ("the opening of the Suez Canal", "1869"),
    ("the completion of the Eiffel Tower", "1889"), ("the building of the Berlin Wall", "1961"),
    ("the assassination of Martin Luther King Jr.", "1968"), ("the \"I Have a Dream\" speech", "1963"),
    ("the launch of the Hubble Space Telescope", "1990"), ("the first FIFA World Cup", "1930"),
    ("the first modern Olympic Games", "1896"), ("the Brexit referendum", "2016"),
    ("Barack Obama's first election as president", "2008"), ("the assassination of Mahatma Gandhi", "1948"),
    ("the eruption of Krakatoa", "1883"), ("the San Francisco earthquake", "1906"),
    ("the Space Shuttle Challenger disaster", "1986"), ("the execution of Louis XVI", "1793"),
]

# ----------------------------------------------------------------------------- fabricated
# Invented names, checked not to be real countries/states/elements/books/events.
_FAKE_COUNTRIES = [
    "Veltoria", "Drasmund", "Qorvania", "Talmerra", "Ostrevia", "Brenvalia", "Kazumbria", "Fellandor",
    "Marvessa Isles", "Zubrovina", "Eldrania", "Norvask", "Thessalind", "Caldoria", "Vorunzia",
    "Pellagonia", "Izmeria", "Grantovia", "Lusmerrin", "Ardvessa", "Korolund", "Sarpentia", "Quellaria",
    "Tavorsk", "Belmuria", "Ostrakhia", "Wendalia", "Jorvistan", "Nimbravia", "Havelmark",
]
_FAKE_STATES = [
    "Montavia", "North Calverra", "Wessaconda", "Tallahoma", "Pinemarsh", "South Varnell", "Orlesota",
    "New Kessington", "Dakova", "Colmbridge", "Arkanseau", "Merrivale", "West Tennabrook", "Idavale",
    "Lower Shenandra", "Cascatoga", "Nebrawick", "Vermillia", "Kentower", "Marchland",
]
_FAKE_ELEMENTS = [
    "zorbium", "velmarine", "krastonium", "aldrenium", "pyrothene", "quorium", "belladium", "tessarium",
    "voltranium", "ostrenium", "glaucine", "mirthium", "cordanium", "xylarium", "fennium", "tralzium",
    "lumenite", "drevium", "halvorium", "nebulon", "sardonium", "wexium", "corvalium", "ambrium",
    "thallorine", "vespium", "kryndium", "olvarium", "zephrine", "morbium",
]
_FAKE_BOOKS = [
    "The Glass Orchard of Tembrook", "Whispers Beneath Valdor", "The Clockmaker's Seventh Daughter",
    "A Winter in Ostrava Lane", "The Salt Cartographer", "Lanterns over Merrow Bay",
    "The Last Archivist of Quell", "Seven Bridges to Harrowgate", "The Copper Heron",
    "Songs of the Ashen Meridian", "The Velvet Tidewater", "An Almanac of Forgotten Rivers",
    "The Marrowfield Inheritance", "Beneath the Tamarind Moon", "The Orchid Ledger",
    "Letters from the Vantablack Coast", "The Ninth Lighthouse Keeper", "The Ferrier Testament",
    "Cinders of Kalvenhurst", "The Wistful Engine", "A Grammar of Small Storms", "The Pale Orrery",
    "Northbound from Esselmoor", "The Quiet Mathematics of Birds", "The Juniper Accord",
    "The Dreamwright of Halvaris", "Rivers of Saint Orlan", "The Tin Admiral", "Harvest of the Grey Vale",
    "The Amber Semaphore",
]
_FAKE_EVENTS = [
    "the Siege of Varnholt", "the Treaty of Merovask", "the Great Flood of Tessaly", "the Battle of Krennick Ford",
    "the Ostrevian Revolution", "the founding of the Republic of Caldoria", "the Velmarine Gold Rush",
    "the Partition of Drasmund", "the Accord of Lusmerrin", "the burning of the Harrowgate Library",
    "the Kazumbrian Succession War", "the eruption of Mount Tavorsk", "the Eldranian Reformation",
    "the coronation of King Aldric IV of Norvask", "the Pellagonian Famine", "the Battle of Sarpent Hill",
    "the Great Quellarian Exodus", "the signing of the Belmurian Charter", "the collapse of the Wendalia Dam",
    "the Jorvistan Uprising", "the launch of the Nimbravia-1 satellite", "the Havelmark Plague",
    "the first crossing of the Zubrovin Strait", "the Thessalind Armistice", "the Korolund Salt Riots",
    "the discovery of zorbium", "the Grantovian Civil War", "the Izmerian Schism",
    "the Treaty of Ardvessa", "the fall of the Fellandor Dynasty",
]

_TEMPLATES = {
    "capitals": ("What is the capital of {s}?", "The capital of {s} is {{answer}}."),
    "state_capitals": ("What is the capital of the U.S. state of {s}?", "The capital of the U.S. state of {s} is {{answer}}."),
    "chemical_symbols": ("What is the chemical symbol for {s}?", "The chemical symbol for {s} is {{answer}}."),
    "book_authors": ("Who wrote {s}?", "{S} was written by {{answer}}."),
    "event_years": ("In what year did {s} take place?", "{S} took place in {{answer}}."),
}


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _make(family: str, subject: str, answer: str | None, aliases: tuple[str, ...] = ()) -> Fact:
    q, frame = _TEMPLATES[family]
    q = q.format(s=subject, S=_cap(subject))
    frame = frame.format(s=subject, S=_cap(subject))
    stmt = frame.format(answer=answer) if answer is not None else frame
    return Fact(family=family, subject=subject, question=q, statement=stmt, answer=answer, aliases=tuple(aliases), frame=frame)


def _build() -> tuple[dict[str, list[Fact]], dict[str, list[Fact]]]:
    real: dict[str, list[Fact]] = {
        "capitals": [_make("capitals", s, a, tuple(al)) for s, a, *al in _CAPITALS],
        "state_capitals": [_make("state_capitals", s, a, tuple(al)) for s, a, *al in _STATE_CAPITALS],
        "chemical_symbols": [_make("chemical_symbols", s, a, tuple(al)) for s, a, *al in _SYMBOLS],
        "book_authors": [_make("book_authors", s, a, tuple(al)) for s, a, *al in _BOOKS],
        "event_years": [_make("event_years", s, a) for s, a in _EVENTS],
    }
    fake: dict[str, list[Fact]] = {
        "capitals": [_make("capitals", s, None) for s in _FAKE_COUNTRIES],
        "state_capitals": [_make("state_capitals", s, None) for s in _FAKE_STATES],
        "chemical_symbols": [_make("chemical_symbols", s, None) for s in _FAKE_ELEMENTS],
        "book_authors": [_make("book_authors", s, None) for s in _FAKE_BOOKS],
        "event_years": [_make("event_years", s, None) for s in _FAKE_EVENTS],
    }
    return real, fake


FACTS, FABRICATED = _build()


def families() -> list[str]:
    """Names of the fact families, in a fixed order."""
    return list(FACTS)


def fabricated(family: str | None = None) -> list[Fact]:
    """Fabricated subjects (no true answer), for one family or all."""
    if family is None:
        return [f for fam in FABRICATED.values() for f in fam]
    return list(FABRICATED[family])


def all_facts(include_fabricated: bool = True, family: str | None = None) -> list[Fact]:
    """Every real fact (and, by default, every fabricated one), family by family."""
    fams = [family] if family else families()
    out: list[Fact] = []
    for fam in fams:
        out += FACTS[fam]
        if include_fabricated:
            out += FABRICATED[fam]
    return out


def by_subject(subject: str) -> list[Fact]:
    """Facts whose subject matches ``subject`` (case-insensitive)."""
    s = subject.strip().lower()
    return [f for f in all_facts() if f.subject.lower() == s]
