def f():
    from feedlake.landing.layouts import storage
