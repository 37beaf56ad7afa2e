"""Answer metrics: numbers compared as values, text by its words."""

from __future__ import annotations

from retrieval.answer_eval import states, worked_result


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


def test_a_gold_figure_given_to_fewer_decimals_matches_the_stated_figure_rounded_to_them():
    assert states("It rose 1.63% [1].", "1.6%")
    assert not states("It rose 1.68% [1].", "1.6%")
    assert not states("There were 2.4 million visitors.", "2")  # a whole number is not a rounding


def test_a_worked_figure_is_read_from_its_bold_result_and_may_be_a_fraction_or_a_percentage():
    answer = "Pilotage as a percentage of total income, 2022: **87.31%**, worked out from the figures below: ..."
    assert worked_result(answer) == "Pilotage as a percentage of total income, 2022: **87.31%**"
    assert states("87.31%", "0.87", as_fraction=True) and not states("87.31%", "0.87")
    assert worked_result("Pilotage | 2022: 1,200 [1]") is None


def test_a_year_is_stated_only_as_itself():
    # A year names a period: 2018 is not 2019 within a figure's rounding.
    assert states("The higher year: **2019**", "2019")
    assert not states("The higher year: **2018**", "2019")
    assert states("Revenue was 2,019 million.", "2019")  # as a value, the same number
