"""The demo's crisis: ten days of a forum feed, served as it looked at any moment.

Velora (e-bikes and locks) is discussed calmly until a video shows its lock opened with a pen:
angry posts from sixty people within two hours (Domino's 2009). Nordbahn (a regional train
operator, German) sees complaints about delays and refused refunds grow a little every day for
five days (Kryptonite 2004). Times are relative to ``end`` (the real now), so the stored
history looks current; ``Timeline.feed(now)`` is the RSS document at simulated time ``now``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

DAYS = 10

_VELORA_CALM = (
    "Rode my Velora to work again, battery still at 60%.",
    "Anyone know if the Velora rack fits a child seat?",
    "Velora service appointment booked, quick and friendly.",
    "Mit dem Velora E-Bike zur Arbeit, klappt super.",
)
_NORDBAHN_CALM = (
    "Nordbahn RE 7 heute pünktlich in Kiel angekommen.",
    "Neue Sitze im Nordbahn-Regionalzug, sehr bequem.",
    "Nordbahn: ab Montag gilt der Winterfahrplan.",
    "Schöne Fahrt mit der Nordbahn an der Küste entlang.",
)
_OPENERS = ("Just tried it myself:", "Unbelievable.", "Seen the video?", "Can confirm,",
            "Warning to everyone:", "Unfassbar:", "Habe es selbst getestet:")  # fmt: skip
_COMPLAINTS = (
    "my Velora lock opens with a cheap ballpoint pen in {n} seconds",
    "Velora support hung up on me when I asked about the pen trick",
    "the {p} euro Velora lock is useless, my bike got stolen",
    "Velora knew about the pen problem and kept selling the lock",
    "mein Velora Schloss lässt sich mit einem Kugelschreiber öffnen",
    "Velora verweigert die Erstattung für das defekte Schloss",
)
_CLOSERS = ("Worst purchase ever.", "I want my money back!", "Never again, Velora.",
            "Totaler Reinfall.", "Frechheit!", "Disgusting customer service.")  # fmt: skip
_BURN = (
    "Nordbahn schon wieder {n} Minuten Verspätung, ich komme zu spät zur Arbeit.",
    "Zug fällt aus, keine Durchsage. Danke für nichts, Nordbahn.",
    "Nordbahn lehnt meine Erstattung ab, obwohl der Zug {n} Minuten zu spät war. Frechheit.",
    "Dritter Zugausfall diese Woche bei der Nordbahn. Totalausfall.",
    "Nordbahn Kundenservice-Katastrophe: seit Tagen keine Antwort.",
    "Nordbahn trains late again, {n} minutes, and the refund form is broken.",
)


@dataclass(frozen=True, slots=True)
class Post:
    when: datetime
    guid: str
    author: str
    text: str
    site: str


class Timeline:
    def __init__(self, end: datetime, seed: int = 2009) -> None:
        rng = random.Random(seed)  # noqa: S311 (sample data, not crypto)
        self.end = end
        self.start = end - timedelta(days=DAYS)
        self.storm = end - timedelta(hours=14)
        self.burn = self.start + timedelta(days=4)
        posts: list[Post] = []
        for hour in range(DAYS * 24):  # calm talk about both brands, day and night
            when = self.start + timedelta(hours=hour, minutes=rng.randrange(60))
            if rng.random() < 0.25:
                posts.append(Post(when, f"v{hour}", f"rider{rng.randrange(400)}",
                                  rng.choice(_VELORA_CALM), "radforum.example"))  # fmt: skip
            if rng.random() < 0.3:
                posts.append(Post(when, f"n{hour}", f"pendler{rng.randrange(400)}",
                                  rng.choice(_NORDBAHN_CALM), "bahnforum.example"))  # fmt: skip
        for day in range(6):  # the slow burn: a few more complaints every day
            for n in range(round(2 * 1.5**day)):
                when = self.burn + timedelta(days=day, minutes=rng.randrange(24 * 60))
                text = rng.choice(_BURN).format(n=rng.randrange(15, 90))
                posts.append(Post(when, f"b{day}-{n}", f"fahrgast{day}{n}", text,
                                  f"forum{rng.randrange(12)}.example"))  # fmt: skip
        for n in range(60):  # the storm: sixty people in two hours
            when = self.storm + timedelta(minutes=2 * n)
            text = (
                f"{rng.choice(_OPENERS)} "
                f"{rng.choice(_COMPLAINTS).format(n=rng.randrange(3, 40), p=rng.choice((99, 149)))}"
                f". {rng.choice(_CLOSERS)}"
            )
            posts.append(Post(when, f"s{n}", f"angry{n}", text, f"site{n % 15}.example"))
        self.posts = sorted(posts, key=lambda p: p.when)

    def feed(self, now: datetime) -> bytes:
        """The RSS document at ``now``: the newest 300 posts published by then."""
        visible = [p for p in self.posts if p.when <= now][-300:]
        items = "".join(
            f"<item><guid>https://{p.site}/t/{p.guid}</guid>"
            f"<link>https://{p.site}/t/{p.guid}</link><title>{escape(p.text[:70])}</title>"
            f"<description>{escape(p.text)}</description>"
            f"<author>{p.author}@{p.site} ({p.author})</author>"
            f"<pubDate>{format_datetime(p.when)}</pubDate></item>"
            for p in reversed(visible)
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            "<title>forum.example: bikes and trains</title><link>https://forum.example/</link>"
            f"<description>sample forum feed</description>{items}</channel></rss>"
        ).encode()

    def steps(self) -> list[datetime]:
        """When the demo polls: every two hours, every 20 minutes around the storm."""
        moments = []
        moment = self.start + timedelta(days=6)
        while moment < self.end:
            close = self.storm - timedelta(hours=1) <= moment < self.storm + timedelta(hours=6)
            moments.append(moment)
            moment += timedelta(minutes=20 if close else 120)
        return moments
