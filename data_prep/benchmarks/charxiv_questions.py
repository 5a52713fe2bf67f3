"""CharXiv's descriptive questions: the HF release (princeton-nlp/CharXiv) stores each figure's four descriptive
questions as template ids (``descriptive_q1..4``, 1-19) and a subplot location; the question text is the template
with the location prefix. The templates are the benchmark's own question text (CharXiv, arXiv:2406.18521, its
official repository's ``DESCRIPTIVE_RESP_INST``; CC BY-SA 4.0), kept verbatim (leading indentation of the
continuation lines removed): their bullet lines define the expected answer (e.g. "Not Applicable"), so they stay.
``OVERARCHING`` is the short form the official descriptive judge shows as the "Overarching Question" (Fig. 15).
"""

from __future__ import annotations

_TICK_X = ("* Your final answer should be the tick value on the x-axis that is explicitly written, including the case "
           "when x-axis is shared across multiple subplots. When the x-axis is present on both the top and bottom of "
           "the plot, answer based on the axis at the bottom. Ignore units or scales that are written separately from "
           "the tick, such as units and scales from the axis label or the corner of the plot.")
_TICK_Y = ("* Your final answer should be the tick value on the y-axis that is explicitly written, including the case "
           "when y-axis is shared across multiple subplots. When the y-axis is present on both the left and right of "
           "the plot, based on the axis at the left. Ignore units or scales that are written separately from the "
           "tick, such as units and scales from the axis label or the corner of the plot.")
_NO_LINES = '* If the plot does not contain any lines or is not considered a line plot, answer "Not Applicable".'
_NO_LEGEND = ('* If the plot does not have a legend or no legend is not considered relevant to this plot, answer '
              '"Not Applicable".')
_NO_COLORBAR = ("* If the plot does not have an explicit colorbar-based continuous legend or the legend is not "
                'considered relevant to this subplot, answer "Not Applicable".')
_DIFF = ("* If the plot does not have an explicit {axis}-axis tick value, or if the tick values are not numerical, or "
         'if the difference is not constant between all consecutive tick values, answer "Not Applicable".')

TEMPLATES = {
    1: "{}what is its title?\n"
       "* Your final answer should be the most relevant title of the plot that is explicitly written.\n"
       "* If the plot does not have an explicit title or contains only a letter, answer 'Not Applicable'.",
    2: "{}what is the label of the x-axis?\n"
       "* Your final answer should be the label of the x-axis that is explicitly written, including the case when "
       "x-axis is shared across multiple subplots. When the x-axis is present on both the top and bottom of the "
       "plot, answer the label of the x-axis at the bottom.\n"
       "* If the plot does not have an explicit x-axis label, answer 'Not Applicable'.",
    3: "{}what is the label of the y-axis?\n"
       "* Your final answer should be the label of the y-axis that is explicitly written, including the case when "
       "y-axis is shared across multiple subplots. When the y-axis is present on both the left and right of the "
       "plot, answer the label of the y-axis at the left.\n"
       "* If the plot does not have an explicit y-axis label, answer 'Not Applicable'.",
    4: "{}what is the leftmost labeled tick on the x-axis?\n" + _TICK_X,
    5: "{}what is the rightmost labeled tick on the x-axis?\n" + _TICK_X,
    6: "{}what is the spatially lowest labeled tick on the y-axis?\n" + _TICK_Y,
    7: "{}what is the spatially highest labeled tick on the y-axis?\n" + _TICK_Y,
    8: "{}what is difference between consecutive numerical tick values on the x-axis?\n"
       "* Your final answer should be the difference between consecutive numerical tick values of the x-axis, "
       "including the case when x-axis is shared across multiple subplots. When the x-axis is present on both the "
       "top and bottom of the plot, answer based on the axis at the bottom. Ignore units or scales that are written "
       "separately from the tick, such as units and scales from the axis label or the corner of the plot.\n"
       + _DIFF.format(axis="x"),
    9: "{}what is difference between consecutive numerical tick values on the y-axis?\n"
       "* Your final answer should be the difference between consecutive numerical tick values of the y-axis, "
       "including the case when y-axis is shared across multiple subplots. When the y-axis is present on both the "
       "left and right of the plot, answer based on the axis at the left. Ignore units or scales that are written "
       "separately from the tick, such as units and scales from the axis label or the corner of the plot.\n"
       + _DIFF.format(axis="y"),
    10: "{}how many lines are there?\n"
        "* Your final answer should be the number of lines in the plot. Ignore grid lines, tick marks, and any "
        "vertical or horizontal auxiliary lines.\n" + _NO_LINES,
    11: "{}do any lines intersect?\n"
        '* Your final answer should be "Yes" if any lines intersect, and "No" otherwise. Ignore grid lines, tick '
        "marks, and any vertical or horizontal auxiliary lines.\n" + _NO_LINES,
    12: "{}how many discrete labels are there in the legend?\n"
        "* Your final answer should account for only labels relevant to the plot in the legend, even if the legend "
        "is located outside the plot.\n" + _NO_LEGEND,
    13: "{}what are the names of the labels in the legend?\n"
        "* You should write down the labels from top to bottom, then from left to right and separate the labels "
        "with commas. Your final answer should account for only labels relevant to the plot in the legend, even if "
        "the legend is located outside the plot.\n" + _NO_LEGEND,
    14: "{}what is the difference between the maximum and minimum values of the tick labels on the continuous "
        "legend (i.e., colorbar)?\n* You should remove the percentage sign (if any) in your answer.\n" + _NO_COLORBAR,
    15: "{}what is the maximum value of the tick labels on the continuous legend (i.e., colorbar)?\n"
        "* You should remove the percentage sign (if any) in your answer.\n" + _NO_COLORBAR,
    16: "{}what is the general trend of data from left to right?\n"
        '* Your final answer should be within a few words, such as "increases", "increases then stabilizes".',
    17: "{}What is the total number of explicitly labeled ticks across all axes?\n"
        "* Your final answer should be the total number of explicitly labeled ticks across all axes, including the "
        "case when any axis is shared across multiple subplots.",
    18: "What is the layout of the subplots?\n"
        '* Your final answer should follow "n by m" format, where n is the number of rows and m is the number of '
        "columns.\n"
        '* If the plot does not contain subplots, answer "1 by 1".',
    19: "What is the number of subplots?\n"
        "* Your final answer should be the total number of subplots in the plot.\n"
        '* If the plot does not contain subplots, answer "1".',
}

OVERARCHING = {
    1: "What is the title of the plot?",
    2: "What is the label of the x-axis?",
    3: "What is the label of the y-axis?",
    4: "What is the leftmost labeled tick on the x-axis?",
    5: "What is the rightmost labeled tick on the x-axis?",
    6: "What is the spatially lowest labeled tick on the y-axis?",
    7: "What is the spatially highest labeled tick on the y-axis?",
    8: "What is difference between consecutive numerical tick values on the x-axis?",
    9: "What is difference between consecutive numerical tick values on the y-axis?",
    10: "How many lines are there?",
    11: "Do any lines intersect?",
    12: "How many discrete labels are there in the legend?",
    13: "What are the names of the labels in the legend? (from top to bottom, then left to right)",
    14: "What is the difference between the maximum and minimum values of the tick labels on the continuous legend "
        "(i.e., colorbar)?",
    15: "What is the maximum value of the tick labels on the continuous legend (i.e., colorbar)?",
    16: "What is the general trend of data from left to right?",
    17: "What is the total number of explicitly labeled ticks across all axes?",
    18: "What is the layout of the subplots?",
    19: "What is the number of subplots?",
}


def descriptive_question(template: int, subplot_loc) -> str:
    """The question of descriptive template ``template`` about the subplot at ``subplot_loc`` ([row, col], [0, 0]
    for a single plot, or a text naming the subplot when they do not form a grid), as CharXiv builds it."""
    if template in (18, 19):  # about the layout: no subplot prefix
        return TEMPLATES[template]
    if isinstance(subplot_loc, str):
        prefix = f"For {subplot_loc}, "
    elif subplot_loc and int(subplot_loc[0]) != 0:
        prefix = f"For the subplot at row {int(subplot_loc[0])} and column {int(subplot_loc[1])}, "
    else:
        prefix = "For the current plot, "
    return TEMPLATES[template].format(prefix)
