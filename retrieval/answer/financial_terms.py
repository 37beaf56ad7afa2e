"""The words of financial statements: line items as questions name them and as filings label
their rows, and the usual metrics defined over them (formulas.py reads both).

A question may say "cash from operations" where the cash flow statement's row reads "Net cash
provided by operating activities", or "capex" for "Purchases of property and equipment": each
line item lists what askers call it and the labels filings give its row. A metric a question
names without defining it ("the FY2018 fixed asset turnover ratio") is computed by its usual
definition, said in the same words a question would use.
"""

from __future__ import annotations

from dataclasses import dataclass

BALANCE_SHEET = "balance sheet"
INCOME_STATEMENT = "income statement"
CASH_FLOWS = "cash flows"

# What a printed 1 is worth in a table "in thousands", and what an answer "in USD millions" is in.
UNITS = {"thousands": 1e3, "millions": 1e6, "billions": 1e9}

# How a page's heading (ingest/tables.py) names each statement.
STATEMENT_HEADINGS = {
    BALANCE_SHEET: ("balance sheet", "financial position", "financial condition"),
    INCOME_STATEMENT: ("statement of income", "statements of income", "operations", "earnings", "income statement"),
    CASH_FLOWS: ("cash flow",),
}


@dataclass(frozen=True)
class LineItem:
    name: str  # as the answer says it
    asked: tuple[str, ...]  # what a question calls it (lower case)
    labels: tuple[str, ...]  # what a filing's row calls it (lower case, "&" as "and")
    statement: str
    outflow: bool = False  # printed negative in its statement ("(1,722)"); used as an amount


LINE_ITEMS = (
    LineItem(
        "cash from operations",
        (
            "cash from operations",
            "cash flow from operations",
            "cash flows from operations",
            "operating cash flow",
            "cash from operating activities",
            "net cash provided by operating activities",
        ),
        (
            "net cash provided by operating activities",
            "net cash provided by operations",
            "cash provided by operations",
            "net cash from operating activities",
            "cash provided by operating activities",
            "net cash flows provided by operating activities",
            "net cash provided by (used in) operating activities",
            "cash provided (used) by operations",
            "cash provided by (used for) operations",
            "net cash provided by operating activities of continuing operations",
            "cash flows from operating activities",
            "net cash from operations",
            "cash generated from operations",
            "net cash provided by operating activities (a)",
        ),
        CASH_FLOWS,
    ),
    LineItem(
        "capital expenditures",
        (
            "capital expenditures",
            "capital expenditure",
            "capex",
            "capital spending",
            "purchases of property and equipment",
        ),
        (
            "capital expenditures",
            "capital spending",
            "purchases of property and equipment",
            "purchases of property, plant and equipment",
            "purchases of property, equipment and software",
            "payments for property, plant and equipment",
            "payments for property and equipment",
            "additions to property, plant and equipment",
            "additions to property and equipment",
            "acquisitions of property, plant and equipment",
            "expenditures for property, plant and equipment",
            "capital expenditures, including capitalized software",
            "property, plant and equipment additions",
            "purchase of property and equipment",
            "purchase of property, plant and equipment",
            "capital expenditures for property and equipment",
            "purchases of land, buildings, and equipment",
            "purchases of land, buildings and equipment",
            "capital expenditures, net of construction payable",
        ),
        CASH_FLOWS,
        outflow=True,
    ),
    LineItem(
        "depreciation and amortization",
        ("depreciation and amortization", "d&a", "depreciation & amortization"),
        (
            "depreciation and amortization",
            "depreciation, depletion and amortization",
            "depreciation and amortization expense",
            "depreciation, amortization and other",
            "depreciation and amortization of property and equipment",
            "depreciation",
            "depreciation and other amortization",
        ),
        CASH_FLOWS,
    ),
    LineItem(
        "dividends paid",
        ("cash dividends", "dividends paid", "total cash dividends paid", "cash dividends paid", "dividends"),
        (
            "dividends paid",
            "cash dividends paid",
            "dividends paid to shareholders",
            "dividends paid to common shareholders",
            "payment of dividends",
            "payments of dividends",
            "dividends",
            "cash dividends",
            "dividends paid on common stock",
            "cash dividends paid to shareholders",
            "dividends paid to stockholders",
            "cash dividends declared and paid",
        ),
        CASH_FLOWS,
        outflow=True,
    ),
    LineItem(
        "revenue",
        (
            "total revenue",
            "revenues",
            "revenue",
            "net revenues",
            "net revenue",
            "net sales",
            "total net sales",
            "sales",
        ),
        (
            "total revenue",
            "total revenues",
            "revenues",
            "revenue",
            "net revenue",
            "net revenues",
            "net sales",
            "total net sales",
            "sales",
            "operating revenues",
            "total net revenue",
            "total net revenues",
            "net sales and revenues",
            "total operating revenues",
            "sales to customers",
            "net operating revenues",
            "revenue, net",
            "total revenues, net",
            "net sales and operating revenues",
            "total sales",
        ),
        INCOME_STATEMENT,
    ),
    LineItem(
        "cost of goods sold",
        ("cogs", "cost of goods sold", "cost of sales", "cost of revenue", "cost of revenues"),
        (
            "cost of sales",
            "cost of goods sold",
            "cost of revenue",
            "cost of revenues",
            "total cost of revenue",
            "total cost of revenues",
            "cost of products sold",
            "total cost of sales",
            "cost of goods and services sold",
        ),
        INCOME_STATEMENT,
    ),
    LineItem(
        "operating income",
        ("operating income", "income from operations", "operating profit", "operating earnings"),
        (
            "operating income",
            "income from operations",
            "operating profit",
            "operating income (loss)",
            "income (loss) from operations",
            "total operating income",
            "operating earnings",
            "earnings from operations",
            "operating loss",
            "income from operations before income taxes",
        ),
        INCOME_STATEMENT,
    ),
    LineItem(
        "net income",
        ("net income attributable to shareholders", "net income", "net earnings", "net profit"),
        (
            "net income attributable to",
            "net earnings attributable to",
            "net income",
            "net earnings",
            "net income (loss) attributable to",
            "net income (loss)",
            "net earnings (loss)",
            "consolidated net income",
            "net income available to common stockholders",
        ),
        INCOME_STATEMENT,
    ),
    LineItem(
        "total current assets",
        ("total current assets", "current assets"),
        ("total current assets",),
        BALANCE_SHEET,
    ),
    LineItem(
        "total current liabilities",
        ("total current liabilities", "current liabilities"),
        ("total current liabilities",),
        BALANCE_SHEET,
    ),
    LineItem(
        "total assets",
        ("total assets",),
        ("total assets",),
        BALANCE_SHEET,
    ),
    LineItem(
        "inventory",
        ("inventory", "inventories"),
        (
            "inventories",
            "inventory",
            "inventories, net",
            "merchandise inventories",
            "total inventories",
            "inventory, net",
        ),
        BALANCE_SHEET,
    ),
    LineItem(
        "accounts payable",
        ("accounts payable", "payables", "trade payables"),
        (
            "accounts payable",
            "trade accounts payable",
            "trade payables",
            "accounts payable, trade",
            "accounts payable - trade",
            "accounts payable and accrued liabilities",
        ),
        BALANCE_SHEET,
    ),
    LineItem(
        "net property, plant and equipment",
        (
            "net property, plant and equipment",
            "net property, plant, and equipment",
            "pp&e",
            "net pp&e",
            "property, plant and equipment",
            "property and equipment",
            "fixed assets",
        ),
        (
            "property, plant and equipment, net",
            "property, plant, and equipment, net",
            "net property, plant and equipment",
            "property and equipment, net",
            "net property and equipment",
            "property, plant and equipment - net",
            "property, plant and equipment-net",
            "land, buildings and equipment, net",
            "property, net",
            "property and equipment, net of accumulated depreciation",
            "total property, plant and equipment, net",
            "property, plant and equipment, net of accumulated depreciation",
        ),
        BALANCE_SHEET,
    ),
    LineItem(
        "total equity",
        ("total equity", "shareholders' equity", "stockholders' equity", "total shareholders' equity"),
        (
            "total equity",
            "total shareholders' equity",
            "total stockholders' equity",
            "total shareowners' equity",
            "total shareholders’ equity",
            "total stockholders’ equity",
        ),
        BALANCE_SHEET,
    ),
)

# Metrics a question may name without defining, each by its usual definition in a question's
# own words (formulas.py parses them as it parses a definition the question gives). Names of one
# metric go together: a question that defines "DPO" and asks for "days payable outstanding
# (DPO)" is computed by its own definition.
METRICS = {
    ("operating cash flow ratio",): "cash from operations / total current liabilities",
    ("working capital ratio", "current ratio"): "total current assets / total current liabilities",
    ("net working capital", "working capital"): "total current assets - total current liabilities",
    ("free cash flow", "fcf"): "cash from operations - capital expenditures",
    ("return on assets", "roa"): "net income / average total assets",
    ("fixed asset turnover ratio",): "revenue / average net property, plant and equipment",
    ("asset turnover ratio", "total asset turnover ratio"): "revenue / average total assets",
    ("inventory turnover ratio", "inventory turnover"): "cost of goods sold / average inventory",
    ("days payable outstanding", "dpo"): "365 * average accounts payable / (cost of goods sold + change in inventory)",
    ("retention ratio",): "(net income - dividends paid) / net income",
    ("dividend payout ratio", "payout ratio"): "dividends paid / net income",
    ("ebitda",): "operating income + depreciation and amortization",
}
