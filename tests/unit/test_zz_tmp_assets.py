def test_a(tiny_assets):
    pass
