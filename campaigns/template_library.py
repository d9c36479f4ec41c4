"""The only tags and filters campaign content may use (the restricted template engine of
campaigns.rendering): conditions and formatting of the plain values the context holds. No
``load``, ``include``, ``extends``, ``url`` or anything else that reads files or the database."""

from django.template import Library, defaultfilters, defaulttags

register = Library()

register.tag("if", defaulttags.do_if)
register.tag("firstof", defaulttags.firstof)
register.tag("comment", defaulttags.comment)

for _name in (
    "default",
    "default_if_none",
    "upper",
    "lower",
    "title",
    "capfirst",
    "truncatechars",
    "truncatewords",
    "linebreaksbr",
    "date",
    "floatformat",
    "yesno",
    "cut",
):
    register.filter(_name, getattr(defaultfilters, _name))
