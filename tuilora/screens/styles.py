"""The wizard's one stylesheet (Textual CSS), laid out for 80x24.

Kept as a Python string rather than a .tcss file so it ships inside the wheel without
package-data settings. A form on the left, the advice panel (34 columns) on the right;
everything scrolls rather than being cut off.
"""

CSS = """

#body {
    height: 1fr;
}

#form {
    width: 1fr;
    padding: 0 1;
}

#advice {
    width: 34;
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
    margin: 0 2 0 0;
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

/* review */
#review-table {
    height: 11;
}

#field-why {
    height: auto;
    max-height: 6;
    margin: 1 0 0 0;
}

#edit-label {
    margin: 0;
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

/* dialogs */
HelpScreen, ConfirmQuit, ExistingRunDialog {
    align: center middle;
}

.dialog {
    width: 64;
    height: auto;
    max-height: 22;
    border: thick $primary;
    background: $surface;
    padding: 0 1;
}

.dialog-title {
    text-style: bold;
    margin: 0 0 1 0;
}
"""
