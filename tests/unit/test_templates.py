from correlation.templates import MAX_TITLE_CHARS, render_title


def test_labels_render_as_text_not_as_templates():
    title = render_title("{{ labels.service }} down", {"labels": {"service": "{{ 7 * 7 }}"}})
    assert title == "{{ 7 * 7 }} down"


def test_sandbox_refuses_attribute_escapes():
    assert render_title("{{ ''.__class__.__mro__ }}", {}) is None
    assert render_title("{{ cycler.__init__.__globals__ }}", {}) is None


def test_a_missing_label_fails_the_render_instead_of_printing_nothing():
    assert render_title("{{ labels.nope }}", {"labels": {}}) is None


def test_titles_are_bounded_and_on_one_line():
    title = render_title("{{ labels.x }}", {"labels": {"x": "a\nb" + "c" * 1000}})
    assert "\n" not in title and len(title) == MAX_TITLE_CHARS
