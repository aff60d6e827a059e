import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def incident(register, trained, log_predictions):
    version = register()
    return version, log_predictions(version, trained.X_valid[5:6], ids=["INC-WF"])[0]


def test_an_analyst_opens_an_incident_and_sees_the_waterfall(incident, analyst, login, page):
    version, prediction = incident
    login(analyst)
    page.goto("/explain/")
    page.click("a[href='/explain/incidents/INC-WF/']")
    page.wait_for_selector("[data-testid=waterfall] .waterfalllayer .point path")
    n = len(version.feature_names)
    shown = min(n, 8)
    expected = 1 + shown + (1 if n > shown else 0) + 1  # base, features, other, total
    assert page.locator("[data-testid=waterfall] .waterfalllayer .point").count() == expected
    labels = page.locator("[data-testid=waterfall] .ytick text").all_text_contents()
    assert "base value E[f(x)]" in labels and "f(x) margin" in labels
    assert (n > shown) == any("other feature" in label for label in labels)
    assert "log-odds" in page.text_content("[data-testid=margin]")
    assert f"{version.model.name} {version.version}" in page.text_content(
        "[data-testid=model-version]"
    )
    rows = page.locator("[data-testid=feature-table] tbody tr").count()
    assert rows == n


def test_an_analyst_marks_an_incident_as_a_false_positive(incident, analyst, login, page):
    _, prediction = incident
    login(analyst)
    page.goto("/explain/incidents/INC-WF/")
    page.check("input[name=verdict][value=benign]")
    page.fill("textarea[name=note]", "Known VPN exit")
    page.click("[data-testid=submit-verdict]")
    page.wait_for_selector(".messages .success")
    prediction.refresh_from_db()
    assert prediction.label == 0
    assert "benign" in page.text_content("[data-testid=verdict]")


def test_global_importance_and_comparison_charts_render(
    register, register_other, trained, log_predictions, auditor, login, page
):
    from explain.services import explanations_precompute, high_risk_predictions

    version = register()
    other = register_other()
    version.model.explain_threshold = 0.0
    version.model.save(update_fields=["explain_threshold"])
    log_predictions(version, trained.X_valid[:60], ids=[f"G-{i}" for i in range(60)])
    log_predictions(other, trained.X_valid[:1], ids=["G-0"], role="shadow")
    explanations_precompute(predictions=high_risk_predictions().filter(version=version))
    n = len(version.feature_names)
    login(auditor)
    page.goto(f"/explain/versions/{version.pk}/importance/")
    page.wait_for_selector("[data-testid=importance-bars] .barlayer .point")
    assert page.locator("[data-testid=importance-bars] .barlayer .point").count() == n
    page.wait_for_selector("[data-testid=importance-strips] .scatterlayer .point")
    strips = page.locator("[data-testid=importance-strips] .scatterlayer .trace").count()
    assert strips == min(n, 12)
    page.goto("/explain/incidents/G-0/compare/")
    page.wait_for_selector("[data-testid=side] .waterfalllayer .point")
    assert page.locator("[data-testid=side]").count() == 2
    for side in page.locator("[data-testid=side]").all():
        assert side.locator(".waterfalllayer .point").count() >= 3
