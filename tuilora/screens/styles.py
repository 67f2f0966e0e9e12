"""The wizard's one stylesheet (Textual CSS), laid out for 80x24 and growing with the terminal.

Kept as a Python string rather than a .tcss file so it ships inside the wheel without
package-data settings. A form on the left, the advice panel on the right (34 columns at 80,
40% of wider terminals); everything wraps or scrolls rather than being cut off. Focus and
selection read without colour (``marks.FOCUS_CSS``).
"""

from tuilora.screens.marks import FOCUS_CSS

CSS = (
    FOCUS_CSS
    + """

#body {
    height: 1fr;
}

#form {
    width: 1fr;
    padding: 0 1;
}

#advice {
    width: 40%;
    min-width: 34;
    max-width: 64;
    border: round $primary;
    border-title-align: left;
    padding: 0 1;
}

#advice-values {
    height: auto;
    border: none;
    padding: 0;
}

#advice-values:focus {
    background-tint: $primary 10%;
}

#advice-count {
    color: $text-muted;
}

#advice-why {
    display: none;
    color: $text;
    padding: 0 0 1 0;
}

#advice-steps {
    color: $text-muted;
    padding: 1 0 0 0;
}

#advice-warnings {
    padding: 1 0 0 0;
}

.question {
    height: auto;
    margin: 0 0 1 0;
}

.prompt {
    text-style: bold;
    width: 100%;
    margin: 0;
}

.help {
    color: $text-muted;
}

.error, .error-text, #step-error {
    color: $error;
    text-style: bold;
}

#step-error, .question .error {
    display: none;
}

.question.invalid .error {
    display: block;
}

RadioSet {
    width: 100%;
}

/* choices wrap rather than end in "…" */
RadioSet > RadioButton {
    width: 100%;
    height: auto;
    text-wrap: wrap;
    text-overflow: fold;
}

Input {
    margin: 0 0 0 0;
}

Select {
    width: 100%;
}

#next {
    margin: 1 0 0 0;
}

.buttons {
    height: auto;
    margin: 1 0;
}

.buttons Button {
    width: auto;
    min-width: 0;
    margin: 0 1 0 0;
}

/* welcome */
#welcome {
    padding: 1 2;
}

#intro {
    margin: 1 0;
    color: $text-muted;
}

#welcome-menu {
    height: auto;
    border: none;
    margin: 0 0 1 0;
}

#keys {
    color: $text-muted;
}

/* category */
#q-category {
    height: auto;
    border: none;
    padding: 0;
}

#category-text {
    margin: 1 0 0 0;
}

/* review: the whole width; notes under the table */
#review-body {
    height: 1fr;
    padding: 0 1;
}

#review-table {
    height: 1fr;
    min-height: 6;
}

#edit-row {
    height: 1;
}

#edit-label {
    width: auto;
    margin: 0;
}

#field-edit {
    width: 1fr;
}

#edit-error {
    height: auto;
}

#review-notes {
    height: auto;
    max-height: 40%;
    border-top: solid $panel-lighten-2;
}

#review-steps {
    color: $text-muted;
}

/* samples */
#prompts {
    border: none;
    padding: 0;
    height: auto;
    min-height: 4;
    max-height: 14;
}

/* finish */
#command-line, #finish-result {
    margin: 1 0 0 0;
}

/* run */
#run-view {
    padding: 1 2;
}

#run-summary {
    margin: 1 0 0 0;
}

"""
)
