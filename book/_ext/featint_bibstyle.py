"""Bibliography labels that match the author-year citations in the text.

The chapters cite as "(Rendle, 2010)" (``bibtex_reference_style: author_year``); pybtex's
``plain`` style would label the same entries [1], [2], ... on the bibliography page. This
Sphinx extension registers a pybtex style, ``featint``, that is ``plain`` with labels such
as "Rendle, 2010", "He and Chua, 2017" and "Cheng et al., 2016".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator

import pybtex.plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


def _surname(person) -> str:
    return re.sub(r"[{}]", "", " ".join(person.prelast_names + person.last_names))


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries: Iterable) -> Iterator[str]:
        entries = list(sorted_entries)
        labels = [self.format_label(entry) for entry in entries]
        # Two papers by the same authors in one year become "..., 2017a" and "..., 2017b".
        repeated, seen = Counter(labels), Counter()
        for label in labels:
            if repeated[label] > 1:
                seen[label] += 1
                label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            yield label

    def format_label(self, entry) -> str:
        names = [_surname(p) for p in entry.persons.get("author", [])]
        if len(names) > 2:
            who = f"{names[0]} et al."
        else:
            who = " and ".join(names) or entry.key
        return f"{who}, {entry.fields.get('year', 'n.d.')}"


class Style(PlainStyle):
    default_label_style = "featint_author_year"


def setup(app) -> dict:
    pybtex.plugin.register_plugin("pybtex.style.labels", "featint_author_year", AuthorYearLabels)
    pybtex.plugin.register_plugin("pybtex.style.formatting", "featint", Style)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
