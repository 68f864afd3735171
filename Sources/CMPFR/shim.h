#pragma once
#include <stdio.h>
#include <mpfr.h>
