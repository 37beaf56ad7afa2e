"""Web pages and whole sites: fetching under an address guard (netguard, fetch), sitemaps
(sitemap), a page's main text cut at its headings (html), and the crawler (crawl)."""
