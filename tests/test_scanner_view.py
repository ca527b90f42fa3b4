"""The officer screen names vaccines from the DCC value set, not only by their codes."""

from scanner.screen.view import vaccine_label


def test_vaccine_labels() -> None:
    assert vaccine_label("EU/1/20/1528") == "Comirnaty (EU/1/20/1528)"
    assert vaccine_label("EU/1/21/1529") == "Vaxzevria (EU/1/21/1529)"
    assert vaccine_label("not-a-product") == "not-a-product"
