"""Answer metrics: numbers compared as values, text by its words."""

from __future__ import annotations

from retrieval.answer_eval import states


def test_numbers_are_compared_as_values_in_any_notation():
    assert states("Operating cash flow ratio: 0.66 [1]", "0.66")
    assert states("Capital expenditure was $1,577 million in 2018 [2].", "$1577.00")
    assert states("Purchases of property: 1,577 (in millions) [1]", "$1.577 billion")
    assert states("It rose 32.3% year over year.", "32.3%")
    assert not states("Capital expenditure was $1,600 million.", "$1577.00")


def test_every_number_of_the_gold_answer_must_be_there():
    gold = "President Clinton on October 28, 1998"
    assert states("It was signed into law by President Clinton on October 28, 1998 [1].", gold)
    assert not states("The Digital Millennium Copyright Act of 1998 [1].", gold)


def test_a_gold_answer_in_words_is_found_by_most_of_its_words():
    gold = "the WIPO Copyright Treaty and the WIPO Performances and Phonograms Treaty"
    assert states("It implements the WIPO Copyright Treaty and the Performances and Phonograms Treaty [1].", gold)
    assert not states("It implements two treaties of 1996 [1].", gold)
