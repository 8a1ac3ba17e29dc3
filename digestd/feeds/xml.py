"""Shared XML pieces of the RSS and Atom writers: namespaces, dates, safe text, output."""

from __future__ import annotations

import datetime as dt

from lxml import etree

from digestd.feeds.model import xml_safe

ATOM = "http://www.w3.org/2005/Atom"
DC = "http://purl.org/dc/elements/1.1/"
SY = "http://purl.org/rss/1.0/modules/syndication/"
#: RFC 5005 feed history: fh:archive marks an archive document
FH = "http://purl.org/syndication/history/1.0"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sub(
    parent: etree._Element, tag: str, text: str | None = None, **attributes: str
) -> etree._Element:
    """A child element; text and attribute values lose what XML cannot carry, nothing else."""
    element = etree.SubElement(parent, tag, {k: xml_safe(v) for k, v in attributes.items()})
    if text is not None:
        element.text = xml_safe(text)
    return element


def serialize(root: etree._Element) -> bytes:
    etree.indent(root)
    return etree.tostring(root, encoding="utf-8", xml_declaration=True, pretty_print=True)
