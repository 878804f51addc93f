#!/usr/bin/env python3
"""The console in a real headless Chromium (Debian's chromium and chromium-driver), driven by
Selenium, with axe-core (shipped by axe-selenium-python) checking each page.

Usage: console_test.py BASE ADMIN ADMIN_PASSWORD REQUESTER REQUESTER_PASSWORD SCREENSHOT_DIR
Fails (exit 1) on any step that does not hold, any serious or critical axe violation, and any
error in the browser's console.
"""
import json
import os
import sys

from axe_selenium_python import Axe
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

base, admin, admin_password, requester, requester_password, shots = sys.argv[1:7]
os.makedirs(shots, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
    options.add_argument(argument)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")))
driver.set_page_load_timeout(30)
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def visible(element_id, timeout=10):
    return WebDriverWait(driver, timeout).until(EC.visibility_of_element_located((By.ID, element_id)))


def accessible(page):
    axe = Axe(driver)
    axe.inject()
    results = axe.run()
    bad = [(v["id"], v["impact"], len(v["nodes"])) for v in results["violations"] if v["impact"] in ("serious", "critical")]
    check(not bad, f"{page}: axe-core found serious or critical violations: {bad}")


def screenshot(name):
    driver.save_screenshot(os.path.join(shots, f"{name}.png"))


def log_in(username, password):
    visible("username").send_keys(username)
    # Keyboard only: Enter in the password field submits the form.
    driver.find_element(By.ID, "password").send_keys(password + Keys.ENTER)
    visible("bookings")


try:
    driver.get(base + "/")
    visible("login")
    check(driver.current_url == base + "/app/", f"/ led to {driver.current_url}, not /app/")
    check(driver.switch_to.active_element.get_attribute("id") == "username", "the username field has the focus")
    screenshot("login")
    accessible("login")

    log_in(admin, admin_password)
    check(f"Signed in as {admin} (admin)" in driver.find_element(By.ID, "who").text, "the admin's name and role are shown")
    check("Console check" in driver.find_element(By.ID, "rows").text, "the pending booking is listed")
    check(driver.execute_script("return localStorage.length + sessionStorage.length") == 0, "nothing in web storage")
    screenshot("admin-queue")
    accessible("admin-queue")

    # A reload keeps the session (the HttpOnly refresh cookie), without the password again.
    driver.refresh()
    visible("bookings")
    check(driver.find_element(By.ID, "login").is_displayed() is False, "still signed in after a reload")

    driver.find_element(By.ID, "logout").click()
    visible("login")
    driver.refresh()
    visible("login")
    check(not driver.find_element(By.ID, "bookings").is_displayed(), "logged out for good after a reload")

    log_in(requester, requester_password)
    check(driver.find_element(By.ID, "bookings-title").text == "Your bookings", "a requester sees their own bookings")
    screenshot("requester")
    accessible("requester")

    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    check(not errors, f"errors in the browser console: {errors}")
except Exception as error:  # a step that timed out or an element that is missing
    failures.append(f"{type(error).__name__}: {error}")
    screenshot("failure")
finally:
    driver.quit()

print(json.dumps({"failures": failures}))
sys.exit(1 if failures else 0)
