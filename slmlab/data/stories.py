"""Stories, the TinyTales writer's main kind of document: a child goes out with a friend, two to
four events happen (an object dropped, put in water or near a fire; from corpus version 2, a new
thing, named by an invented word, whose fate only what it is made of tells; an animal; the
weather; food; a friend; a feeling; a thing found where it belongs) and the day ends with a
feeling.

:class:`StoryWriter` writes them, with the helpers every kind of document uses (a person, an
object, a description); :class:`slmlab.data.writer.Writer` adds the other kinds."""

from __future__ import annotations

import random

from .world import (
    ACTIONS,
    ANIMAL_ADJ,
    ANIMALS,
    COLORS,
    FEELING_CAUSES,
    FEELINGS,
    FOODS,
    HELD_OUT,
    KIN,
    MATERIAL_OF,
    MATERIALS,
    NAMES,
    OBJECT_INFO,
    OBJECTS,
    OUTDOOR,
    PLACE_OF,
    PLACES,
    PRONOUNS,
    SECRET_WORDS,
    SIZES,
    TIMES,
    TOYS,
    TRAITS,
    USE_OF,
    WEATHER,
    article,
    behaviour,
    cap,
    past,
    plural,
)


class StoryWriter:
    """Stories and the helpers of every kind of document, from ``self.r``, the seeded
    ``random.Random`` that :class:`slmlab.data.writer.Writer` is made with, ``self.split``,
    whose invented words name the new things, and ``self.version``, the corpus version."""

    # ---------------------------------------------------------------- helpers
    def person(self, avoid: str | None = None):
        g = self.r.choice(("she", "he"))
        name = self.r.choice(NAMES[g])
        while name == avoid:
            name = self.r.choice(NAMES[g])
        return name, g

    def obj(self, action: str | None = None, material: str | None = None) -> str:
        """An object; with ``action``, one whose behaviour under it may be written
        (not held out)."""
        pool = OBJECTS[material] if material else list(OBJECT_INFO)
        while True:
            o = self.r.choice(pool)
            if action is None or (o, action) not in HELD_OUT:
                return o

    def describe(self, o: str) -> str:
        k = self.r.random()
        if k < 0.3:
            return f"{self.r.choice(COLORS)} {o}"
        if k < 0.45:
            return f"{self.r.choice(SIZES)} {o}"
        # not "an ice snowball", "a stone rock"
        if k < 0.6 and MATERIAL_OF[o] not in ("ice", "stone"):
            return f"{MATERIAL_OF[o]} {o}"
        return o

    # ---------------------------------------------------------------- stories
    def story(self) -> str:
        r = self.r
        name, g = self.person()
        he, him, his = PRONOUNS[g]
        friend, fg = self.person(avoid=name)
        place = r.choice(OUTDOOR)
        kid = "girl" if g == "she" else "boy"
        ctx = dict(name=name, he=he, him=him, his=his, friend=friend, fg=fg, place=place, kid=kid)
        s = [
            r.choice(
                [
                    f"Once upon a time, there was a {r.choice(TRAITS)} {kid} named {name}.",
                    f"{name} was a {r.choice(TRAITS)} {kid} who liked to play at "
                    f"{r.choice(OUTDOOR)}.",
                    f"There once lived a {r.choice(TRAITS)} little {kid} called {name}.",
                    f"{name} and {his} {r.choice(KIN)} lived in a little house near "
                    f"{r.choice(OUTDOOR)}.",
                    f"{name} was {article(r.choice(TRAITS))} {kid}. "
                    f"{cap(he)} had a friend named {friend}.",
                    f"In a small village, there lived a {kid} named {name}. "
                    f"{cap(he)} was very {r.choice(TRAITS)}.",
                ]
            )
        ]
        s.append(
            r.choice(
                [
                    f"{r.choice(TIMES)}, {he} went to {place} with {his} friend {friend}.",
                    f"{r.choice(TIMES)}, {name} walked to {place}. "
                    f"{cap(his)} friend {friend} came too.",
                    f"{r.choice(TIMES)}, {name} ran to {place} with {friend}.",
                    f"{r.choice(TIMES)}, {name} and {friend} went to {place} to play.",
                    f"{r.choice(TIMES)}, {his} {r.choice(KIN)} took {him} and {friend} to {place}.",
                    f"{r.choice(TIMES)}, {name} met {friend} at {place}.",
                ]
            )
        )
        events = [
            self._object_event,
            self._object_event,
            self._animal_event,
            self._weather_event,
            self._food_event,
            self._friend_event,
            self._feeling_event,
            self._find_event,
        ] + [self._new_thing_event] * (2 * (self.version >= 2))  # new things from version 2
        for ev in r.sample(events, r.randint(2, 4)):
            s += ev(ctx)
        good = r.random() < 0.7
        feel = r.choice(
            ["happy", "glad", "proud", "calm", "thankful"]
            if good
            else ["sad", "tired", "upset", "sleepy"]
        )
        s.append(
            r.choice(
                [
                    f"{name} felt {feel}.",
                    f"At the end of the day, {name} was {feel}.",
                    f"That evening, {name} went home. {cap(he)} was {feel}.",
                    f"When the sun went down, {name} was {feel} and went to bed.",
                ]
            )
        )
        if good:
            s.append(
                r.choice(
                    [
                        f'{cap(he)} smiled and said, "This was the best day ever!"',
                        f"{name} hugged {friend} and said thank you.",
                        "The end.",
                        f"From that day on, {name} and {friend} were best friends.",
                    ]
                )
            )
        else:
            s.append(
                r.choice(
                    [
                        f"But {friend} gave {him} a big hug, and soon {he} felt better.",
                        f"{cap(his)} {r.choice(KIN)} said, \"Don't worry. "
                        'Tomorrow will be better."',
                        "The end.",
                        f"The next day, {name} felt much better.",
                    ]
                )
            )
        return " ".join(s)

    def _object_event(self, c):
        r = self.r
        action = r.choice(ACTIONS)
        o = self.obj(action)
        name, he, his, friend = c["name"], c["he"], c["his"], c["friend"]
        d = self.describe(o)
        found = r.choice(
            [
                f"{cap(he)} found {article(d)} on the ground.",
                f"{name} saw {article(d)} near a tree.",
                f"{friend} gave {name} {article(d)}.",
                f"{name} had {article(d)} in {his} bag.",
                f"{name} picked up {article(d)}.",
                f"There was {article(d)} on the table.",
            ]
        )
        out = [found]
        if r.random() < 0.6 and not d.startswith(MATERIAL_OF[o]):
            out.append(
                r.choice(
                    [f"The {o} was made of {MATERIAL_OF[o]}.", f"It was made of {MATERIAL_OF[o]}."]
                )
            )
        if action == "drop":
            out.append(
                r.choice(
                    [
                        f"{cap(he)} dropped the {o} on the floor.",
                        f"Oops! {name} dropped the {o}.",
                        f"The {o} slipped out of {his} hands and fell.",
                        f"{friend} dropped the {o} by mistake.",
                    ]
                )
            )
        elif action == "water":
            out.append(
                r.choice(
                    [
                        f"{cap(he)} put the {o} in the water.",
                        f"{name} threw the {o} into the pond.",
                        f"The {o} fell into the river.",
                        f"{name} dropped the {o} into a bucket of water.",
                    ]
                )
            )
        else:
            out.append(
                r.choice(
                    [
                        f"{cap(he)} put the {o} near the fire.",
                        f"{name} held the {o} over the fire.",
                        f"{friend} left the {o} next to the fire.",
                        f"The {o} was too close to the fire.",
                    ]
                )
            )
        out.append(f"The {o} {past(behaviour(o, action))}.")
        if action == "drop" and MATERIAL_OF[o] in ("glass", "ice"):
            out.append(
                r.choice(
                    [f"{name} was sad.", f'"Oh no!" said {name}.', f"{friend} helped clean it up."]
                )
            )
        elif r.random() < 0.3:
            out.append(
                r.choice([f'"Look!" said {name}.', f"{name} laughed.", f'"Wow," said {friend}.'])
            )
        return out

    def _new_thing_event(self, c):
        """A thing no one knows, named by an invented word of the split: what happens to it can
        only be worked out from what the story says it is made of (one step: the material and
        the rule), from how it feels (two steps: the feel gives the material), or, with a second
        new thing beside it, from the material of the right one."""
        r = self.r
        name, he, friend = c["name"], c["he"], c["friend"]
        action = r.choice(ACTIONS)
        m = r.choice(list(MATERIALS))
        thing, other = r.sample(SECRET_WORDS[self.split], 2)
        k = r.random()
        if k < 0.45:  # the material stated
            out = [
                r.choice(
                    [
                        f"{name} found {article(thing)}. The {thing} was made of {m}.",
                        f"{friend} gave {name} {article(thing)} made of {m}.",
                        f"{name} had {article(thing)}. It was made of {m}.",
                        f"There was {article(thing)} on the table. It was made of {m}.",
                    ]
                )
            ]
        elif k < 0.7:  # only how it feels
            out = [
                r.choice(
                    [
                        f"{name} found {article(thing)}. It was {MATERIALS[m]['feel']}.",
                        f"{friend} gave {name} {article(thing)}. The {thing} felt "
                        f"{MATERIALS[m]['feel']}.",
                        f"{name} had {article(thing)} that was {MATERIALS[m]['feel']}.",
                    ]
                )
            ]
        else:  # two new things of materials that behave differently
            m2 = r.choice([x for x in MATERIALS if MATERIALS[x][action] != MATERIALS[m][action]])
            first = [(thing, m), (other, m2)]
            r.shuffle(first)
            (a, ma), (b, mb) = first
            out = [
                r.choice(
                    [
                        f"{name} had {article(a)} made of {ma} and {article(b)} made of {mb}.",
                        f"{name} found {article(a)} made of {ma}. {friend} found "
                        f"{article(b)} made of {mb}.",
                        f"The {a} was made of {ma}, and the {b} was made of {mb}.",
                    ]
                )
            ]
        out.append(
            {
                "drop": f"{cap(he)} dropped the {thing} on the floor.",
                "water": f"{cap(he)} put the {thing} in the water.",
                "fire": f"{cap(he)} put the {thing} near the fire.",
            }[action]
        )
        out.append(f"The {thing} {past(MATERIALS[m][action])}.")
        return out

    def _find_event(self, c):
        r = self.r
        o = r.choice(list(OBJECT_INFO))
        place, use = PLACE_OF[o], USE_OF[o]
        name, he, his = c["name"], c["he"], c["his"]
        return r.choice(
            [
                [
                    f"In {place}, {name} found {article(self.describe(o))}.",
                    f"{cap(he)} used it to {use}.",
                ],
                [
                    f"{name} needed {article(o)} to {use}.",
                    f"{cap(he)} looked in {place} and found one there.",
                ],
                [
                    f"{name} went to {place} to get {article(o)}.",
                    f'"We use {article(o)} to {use}," said {his} {r.choice(KIN)}.',
                ],
            ]
        )

    def _animal_event(self, c):
        r = self.r
        an = r.choice(list(ANIMALS))
        sound, home, food = ANIMALS[an]
        name, he, friend = c["name"], c["he"], c["friend"]
        return r.choice(
            [
                [
                    f"{cap(he)} saw {article(an)} {home}.",
                    f"The {an} {sound}.",
                    f"{name} gave the {an} some {food}, and the {an} ate it all.",
                ],
                [
                    f"{cap(article(r.choice(ANIMAL_ADJ)))} {an} came to say hello.",
                    f"It {sound} at {name}.",
                    f"{name} laughed because the {an} was so funny.",
                ],
                [
                    f"{friend} showed {name} {article(an)}.",
                    f'"The {an} lives {home} and eats {food}," said {friend}.',
                ],
                [
                    f"On the way, they met {article(an)}.",
                    f"The {an} was hungry, so {name} gave it some {food}.",
                ],
            ]
        )

    def _weather_event(self, c):
        r = self.r
        cause = r.choice(list(WEATHER))
        effect = r.choice(WEATHER[cause])
        name = c["name"]
        return r.choice(
            [
                [f"Suddenly, {cause}.", f"Because {cause}, {effect}."],
                [f"That day {cause}, so {effect}."],
                [f"{name} looked outside. {cap(cause)}.", f"{cap(effect)}."],
                [f"{cap(cause)}, so {effect}."],
            ]
        )

    def _food_event(self, c):
        r = self.r
        f = r.choice(list(FOODS))
        n = r.randint(2, 9)
        name, he, friend = c["name"], c["he"], c["friend"]
        return r.choice(
            [
                [f"{name} was hungry, so {he} ate {article(f)}.", f"The {f} was {FOODS[f]}."],
                [
                    f"{name} had {n} {plural(f)}.",
                    f"{cap(he)} gave one to {friend}, "
                    f"so {he} had {n - 1} {plural(f) if n - 1 != 1 else f} left.",
                ],
                [f"{friend} and {name} shared {article(f)} under a tree.", f"It was {FOODS[f]}."],
            ]
        )

    def _friend_event(self, c):
        r = self.r
        name, friend, fg = c["name"], c["friend"], c["fg"]
        fhe, _, fhis = PRONOUNS[fg]
        toy = r.choice(TOYS)
        return r.choice(
            [
                [
                    f"{name} met {friend}, and they played together.",
                    "They ran and jumped until they were tired.",
                ],
                [
                    f"{friend} was sad because {fhe} lost {fhis} {toy}.",
                    f"{name} helped {friend} look for it, and they found it in {r.choice(PLACES)}.",
                ],
                [
                    f"{name} and {friend} built {article(r.choice(SIZES))} tower of blocks.",
                    "Then it fell down, and they laughed.",
                ],
                [
                    f'{friend} asked, "Can I play with you?"',
                    f'"Yes!" said {name}. They played all afternoon.',
                ],
            ]
        )

    def _feeling_event(self, c):
        r = self.r
        feel = r.choice(FEELINGS)
        who, g = (
            (c["name"], PRONOUNS["she" if c["he"] == "she" else "he"])
            if r.random() < 0.6
            else (c["friend"], PRONOUNS[c["fg"]])
        )
        cause = feeling_cause(r, feel, g)
        return (
            [f"{who} {cause}.", f"{cap(g[0])} felt {feel}."]
            if r.random() < 0.7
            else [f"{who} felt {feel} because {g[0]} {cause}."]
        )


def feeling_cause(
    r: random.Random, feel: str, g: tuple[str, str, str], generic: bool = False
) -> str:
    he, him, his = g
    if generic:
        he, his = "it", "its"
        himself = "itself"
    else:
        himself = "herself" if he == "she" else "himself"
    t = r.choice(FEELING_CAUSES[feel])
    out = t.format(his=his, he=he, toy=r.choice(TOYS), kin=r.choice(KIN), himself=himself)
    if generic:  # "a child ... its favorite toy" reads badly: use "their"
        out = (
            out.replace(" its ", " their ")
            .replace("itself", "themselves")
            .replace(" it had lost", " they had lost")
        )
    return out
