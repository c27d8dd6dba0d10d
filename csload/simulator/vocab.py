"""Word lists the data generator draws from, hard cases included on purpose.

The hard strings carry what a CSV or JSONL reader gets wrong: commas, double and single quotes,
\\n and \\r\\n line breaks, backslashes (one even starts a `\\N` inside a longer string), accents,
CJK, emoji, empty strings and surrounding spaces. Array elements never contain line breaks
(the export engine's array syntax has no agreed escape for them).
"""

from __future__ import annotations

# (country code, language, cities): cities with accents, CJK, commas and apostrophes.
GEOGRAPHY: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("US", "en-US", ("New York", "San Francisco", "Washington, D.C.", "Chicago")),
    ("FR", "fr-FR", ("Paris", "Lyon", "Saint-Étienne", "Île-de-Bréhat")),
    ("DE", "de-DE", ("Berlin", "München", "Köln", "Düsseldorf")),
    ("JP", "ja-JP", ("東京", "大阪", "京都")),
    ("BR", "pt-BR", ("São Paulo", "Brasília", "Florianópolis")),
    ("ES", "es-ES", ("Madrid", "A Coruña", "Cádiz")),
    ("CN", "zh-CN", ("北京", "上海", "Xi'an")),
    ("GB", "en-GB", ("London", "Newcastle upon Tyne", "King's Lynn")),
    ("PL", "pl-PL", ("Kraków", "Łódź", "Gdańsk")),
)
GEOGRAPHY_WEIGHTS = (30, 18, 12, 8, 8, 7, 6, 8, 3)

# device_id -> weight: 0 unknown, 1 desktop, 2 mobile web, 3 tablet web, 4 mobile app, 5 tablet app
DEVICE_WEIGHTS = {0: 2, 1: 45, 2: 33, 3: 8, 4: 9, 5: 3}
APP_DEVICES = (4, 5)

BROWSERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Chrome", ("120.0.6099.109", "121.0.6167.85", "119.0.6045.199")),
    ("Safari", ("17.1.2", "16.6", "17.2")),
    ("Firefox", ("121.0", "120.0.1", "115.6.0")),
    ("Edge", ("120.0.2210.91", "121.0.2277.83")),
    ("Samsung Internet", ("23.0.1.1", "22.0.0.54")),
)

# device_id -> (platform name, platform versions, screen sizes (h, w), models (model, maker))
PLATFORMS: dict[int, tuple[tuple[str, tuple[str, ...]], ...]] = {
    0: (("Unknown", ("",)),),
    1: (("Windows", ("10", "11")), ("macOS", ("14.2", "13.6.3")), ("Linux", ("",))),
    2: (("iOS", ("17.1.2", "16.7.4")), ("Android", ("14", "13"))),
    3: (("iPadOS", ("17.2", "16.6")), ("Android", ("13",))),
    4: (("iOS", ("17.1.2", "16.7.4")), ("Android", ("14", "13"))),
    5: (("iPadOS", ("17.2",)), ("Android", ("13",))),
}
SCREENS: dict[int, tuple[tuple[int, int], ...]] = {
    0: ((768, 1024),),
    1: ((1080, 1920), (1440, 2560), (900, 1440), (768, 1366)),
    2: ((844, 390), (915, 412), (780, 360)),
    3: ((1180, 820), (1366, 1024)),
    4: ((844, 390), (932, 430), (915, 412)),
    5: ((1180, 820), (1366, 1024)),
}
MODELS: dict[int, tuple[tuple[str, str], ...]] = {
    0: (("", ""),),
    1: (("", ""),),
    2: (("iPhone", "Apple"), ("Pixel 8", "Google"), ("SM-S918B", "Samsung")),
    3: (("iPad", "Apple"), ("Galaxy Tab S9", "Samsung")),
    4: (("iPhone 15 Pro", "Apple"), ("Pixel 8", "Google"), ('Galaxy S24 "Ultra"', "Samsung")),
    5: (("iPad Pro (12.9-inch)", "Apple"),),
}
DENSITIES = (1.0, 1.5, 2.0, 2.625, 3.0, 3.5)
APP_VERSIONS = ("5.12.0", "5.11.3", "6.0.0-beta.1")

REFERERS = (
    "",
    "",
    "https://www.google.com/",
    "https://www.bing.com/search?q=red+shoes%2C+size+42",
    "https://t.co/x7Gq2",
    "https://news.example.org/article?id=12,13&ref=\"home\"",
    "https://www.qwant.com/?q=café+crème",
)

# Scalar hard cases, used for user_id_unhashed and screen_name.
HARD_STRINGS = (
    "Zoë O'Brien, \"VIP\"",
    "line one\nline two",
    "windows line\r\nbreak",
    "東京タワー 🗼 visitor",
    "comma, and \"double quotes\"",
    "emoji 🎉🛒 party",
    "C:\\New folder\\zoë.txt",
    "",
    " leading and trailing spaces ",
    "\"",
)

UNHASHED_IDS = ("", "", "", "", "user-{u}@example.com", "crm:{u}", "ID-{u}")

SITE_HOST = "www.shop.example"
PATHS = (
    "/",
    "/search",
    "/cart",
    "/checkout/payment",
    "/p/{n}",
    "/c/shoes/running",
    "/fr/été-collection",
    "/商品/スニーカー",
    "/blog/10-tips,-tricks-&-more",
    "/de/größen-tabelle",
)
QUERIES = (
    "",
    "",
    "",
    "q=red%20shoes",
    "utm_source=newsletter&utm_campaign=black_friday",
    "q=it's \"great\", really",
    "color=red,blue&size=42",
    "q=café&page=2",
)
SCREEN_NAMES = ("Home", "Product Detail", "Panier 🛒", "Checkout", "Search results", "Compte")
# Screen names with line breaks, for the views' hard cases.
HARD_SCREEN_NAMES = ("Checkout\nStep 2", "Promo\r\nBanner", "Size, \"EU\"")

# Array element hard cases: quotes of both kinds, commas, brackets, backslashes, empty.
EVENT_NAMES = (
    "screen_view",
    "add_to_cart",
    "tap 'Buy now'",
    "promo \"summer\", 2026",
    "ajouter_au_panier_é",
    "🎉 confetti",
    "[bracketed]",
    "path\\to\\screen",
    "",
)
SKUS = ("SKU-1001", "SKU-12'A", "SKU \"X\", v2", "ÉTÉ-42", "靴-7", "A\\B-9", "SKU-2002")

ERROR_TYPES = ("js", "api", "js", "network")
ERROR_MESSAGES = (
    "Uncaught TypeError: Cannot read properties of undefined (reading 'price')",
    "Failed to fetch \"/api/cart\", status 500",
    "ReferenceError: ga is not defined",
    "Script error.",
    "Échec: délai dépassé",
    "Unexpected token '<' in JSON at position 0",
    "C:\\fakepath\\upload.png is not allowed",
)
ERROR_FILES = (
    "https://cdn.shop.example/app.3f9a.js",
    "https://cdn.shop.example/vendor,chunk.js",
    "",
    "https://www.shop.example/p/123?v='2'",
)

# Custom variables defined on the project: position -> (name, values). Unset values are null.
CUSTOM_VARS: dict[int, tuple[str, tuple[str, ...]]] = {
    1: ("user_type", ("premium", "free", "trial", "staff, \"internal\"")),
    2: ("ab_test", ("A", "B", "variant B, \"control\"", "contrôle")),
    3: ("page_category", ("shoes", "accessoires/été", "新品", "sale 🏷️", "")),
    4: ("cart_status", ("empty", "filled", "abandoned")),
    5: ("campaign", ("black_friday", "soldes d'hiver", "newsletter\nweekly")),
}

# Dynamic variable keys: key -> (type, values, weekdays it is seen on (0 = Monday; None: all))
DYNAMIC_VARS: dict[str, tuple[str, tuple[str, ...], tuple[int, ...] | None]] = {
    "utm_campaign": ("STRING", ("black_friday", "spring, sale", "noël \"2026\"", "直播"), None),
    "experiment_id": ("STRING", ("exp-101", "exp-102", "exp-103"), None),
    "plan": ("STRING", ("basic", "pro", "entreprise"), None),
    "weekend_banner": ("STRING", ("on", "off"), (5, 6)),
}
